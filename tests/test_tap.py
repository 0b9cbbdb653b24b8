from __future__ import annotations

import textwrap
from typing import Any

import pytest
import pytest_twisted
from klein import Klein
from twisted.application.service import IServiceMaker, MultiService
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.web.resource import Resource

from tests.processes import Server, twistd
from tests.support import Browser, cookieValue, plainClient, resultOf
from txsessions import MemoryDatabase
from txsessions.db import openDatabase
from txsessions.tap import Options, loadApp, makeService

sampleApp = Klein()


@sampleApp.route("/")
def sampleHome(request: Any) -> str:
    import txsessions

    session = txsessions.get(request)
    session.set("visits", session.get("visits", 0) + 1)
    return str(session.get("visits"))


sampleResource = Resource()


def sampleFactory() -> Klein:
    return sampleApp


notAnApp = 42


def options(*argv: str) -> Options:
    o = Options()
    o.parseOptions(list(argv))
    return o


def test_twistdFindsThePlugin() -> None:
    assert "txsessions" in {p.tapname for p in getPlugins(IServiceMaker)}


def test_defaults() -> None:
    o = options()
    assert o["listen"] == ["tcp:8080"]
    assert o["database"] == "memory:"
    assert o["app"] is None
    assert o["cookie"] is None


def test_listenRepeats() -> None:
    assert options("--listen", "tcp:1", "--listen", "unix:/tmp/s")["listen"] == [
        "tcp:1",
        "unix:/tmp/s",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--app", "nocolon"], "module:attribute"),
        (["--cookie", "bad name"], "cookie name"),
    ],
)
def test_badOptions(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options(*argv)


def test_loadApp() -> None:
    assert IResourceProvided(loadApp("tests.test_tap:sampleApp"))
    assert loadApp("tests.test_tap:sampleResource") is sampleResource
    assert IResourceProvided(loadApp("tests.test_tap:sampleFactory"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no.such.module:app", "cannot load"),
        ("tests.test_tap:missing", "cannot load"),
        ("tests.test_tap:notAnApp", "neither a Klein app nor a resource"),
    ],
)
def test_loadAppErrors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        loadApp(spec)


def IResourceProvided(resource: Any) -> bool:
    from twisted.web.resource import IResource

    return bool(IResource.providedBy(resource))


def siteOf(service: Any) -> Any:
    return [s for s in service if hasattr(s, "factory")][0].factory


def test_makeServiceServesTheDemo() -> None:
    service = makeService(options("--listen", "tcp:0"))
    assert isinstance(service, MultiService)
    browser = Browser(siteOf(service).resource)
    response, _ = browser.get("/login")
    assert cookieValue(response, "mycookiesessionnameid")


def test_makeServiceWrapsTheApp() -> None:
    service = makeService(
        options("--app", "tests.test_tap:sampleApp", "--cookie", "mine")
    )
    browser = Browser(siteOf(service).resource)
    response, body = browser.get("/")
    assert body == b"1"
    sid = cookieValue(response, "mine")
    assert browser.get("/", {"mine": sid})[1] == b"2"


def test_stoppingTheServiceClosesTheDatabase() -> None:
    service: Any = makeService(options("--listen", "tcp:0"))
    sessionsService = [s for s in service if hasattr(s, "sessions")][0]
    closed: list[bool] = []
    sessionsService.sessions.database.close = lambda: closed.append(True)
    sessionsService.startService()
    sessionsService.stopService()
    assert closed == [True]


def test_openDatabase() -> None:
    assert isinstance(openDatabase("memory:"), MemoryDatabase)
    with pytest.raises(
        ValueError, match="unknown database URL 'nosuch://x': use memory:"
    ):
        openDatabase("nosuch://x")


def test_unknownDatabaseIsAUsageErrorAtStartUp() -> None:
    with pytest.raises(UsageError, match="unknown database URL 'nosuch:'"):
        options("--database", "nosuch:")


@pytest_twisted.ensureDeferred
async def test_twistdServesAUserApp(tmp_path: Any) -> None:

    (tmp_path / "myapp.py").write_text(
        textwrap.dedent(
            """
            from klein import Klein
            import txsessions

            app = Klein()

            @app.route("/")
            def home(request):
                session = txsessions.get(request)
                session.set("n", session.get("n", 0) + 1)
                return str(session.get("n"))
            """
        )
    )
    argv = [
        twistd(),
        "-n",
        "--pidfile=",
        "txsessions",
        "--app",
        "myapp:app",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]
    server = Server(argv, str(tmp_path), pythonPath=str(tmp_path))
    client = plainClient()
    try:
        base = await server.start()
        response = await client.get(base + "/")
        assert await response.text() == "1"
        sid = cookieValue(response, "txsessionid")
        response = await client.get(base + "/", cookies={"txsessionid": sid})
        assert await response.text() == "2"
    finally:
        await server.stop()


ownSessions = None


def ownWrapped() -> Any:
    from txsessions import Config, Sessions

    global ownSessions
    ownSessions = Sessions(Config(cookie="own"))
    return ownSessions.wrap(sampleApp.resource())


def test_anAppWrappedAlreadyKeepsItsManager() -> None:
    service = makeService(options("--app", "tests.test_tap:ownWrapped"))
    browser = Browser(siteOf(service).resource)
    response, _ = browser.get("/")
    assert cookieValue(response, "own")
    assert ownSessions is not None
    assert resultOf(ownSessions.count()) == 1


def test_unusableDatabaseIsAUsageErrorNamingTheFile(tmp_path: Any) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 500)
    with pytest.raises(UsageError, match="broken.db"):
        options("--database", f"sqlite:{path}")


def test_twistdSaysClearlyWhenTheDatabaseIsUnusable(tmp_path: Any) -> None:
    import subprocess

    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 500)
    result = subprocess.run(
        [twistd(), "-n", "--pidfile=", "txsessions", "--database", f"sqlite:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "broken.db" in output
    assert "Traceback" not in output
