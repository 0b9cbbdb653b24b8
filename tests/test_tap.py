from __future__ import annotations

import gc
import importlib
import importlib.metadata
import json
import re
import subprocess
import sys
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
from txsessions import Config, MemoryDatabase
from txsessions.codec import CookieCodec, generateKey
from txsessions.db import openDatabase
from txsessions.demo import COOKIE as DEMO_COOKIE
from txsessions.ids import isWellFormedID
from txsessions.tap import Options, loadApp, makeService, readKeys

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


def twistdArgv(*argv: str) -> list[str]:
    """
    The command line of C{twistd txsessions ARGV} in the foreground.
    """
    return [twistd(), "-n", "--pidfile=", "txsessions", *argv]


USAGE_ERRORS_EXIT_NONZERO = tuple(
    int(part) for part in importlib.metadata.version("twisted").split(".")[:2]
) >= (26, 10)
"""
Whether twistd exits with a non-zero status on a usage error, as it does
since Twisted 26.10 (before, it printed the error and exited with 0).
"""


def assertFailed(code: int) -> None:
    """
    Assert that twistd's exit status says it failed, where Twisted's twistd
    says so (L{USAGE_ERRORS_EXIT_NONZERO}); its output is checked apart.
    """
    if USAGE_ERRORS_EXIT_NONZERO:
        assert code != 0


def runTwistd(cwd: Any, *argv: str) -> tuple[int, str]:
    """
    Run C{twistd txsessions ARGV} to its end.

    @return: its exit status, and its standard output and error.
    """
    result = subprocess.run(
        twistdArgv(*argv), capture_output=True, text=True, timeout=60, cwd=cwd
    )
    return result.returncode, result.stdout + result.stderr


def test_twistdFindsThePlugin() -> None:
    assert "txsessions" in {p.tapname for p in getPlugins(IServiceMaker)}


def test_thePluginIsNamedForWhatItServes() -> None:
    # It serves any --app, not only the demo (issue 16).
    plugin = importlib.import_module("twisted.plugins.txsessions_plugin")
    assert plugin.txsessionsServer.tapname == "txsessions"
    assert not hasattr(plugin, "txsessionsDemo")


def test_defaults() -> None:
    o = options()
    assert o["listen"] == ["tcp:8080:interface=127.0.0.1"]  # the demo: see below
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
        # helper-26: each of these was a traceback.
        ("tests.test_tap:needsAnArgument", "cannot load .*missing 1 required"),
        ("json:loads", "cannot load"),
        ("tests.test_tap:raises", "cannot load .*ZeroDivisionError"),
    ],
)
def test_loadAppErrors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        loadApp(spec)


def needsAnArgument(name: str) -> Klein:
    return Klein()


def raises() -> Klein:
    return 1 // 0  # type: ignore[return-value]


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


def test_startingTheServiceFreezesTheHeapStartUpMade() -> None:
    """
    Once started, the objects start-up made are out of the collector's
    sight (C{gc.freeze}): full collections no longer walk them.
    """
    service: Any = makeService(options("--listen", "tcp:0"))
    sessionsService = [s for s in service if hasattr(s, "sessions")][0]
    made: list[object] = []
    gc.unfreeze()
    try:
        sessionsService.startService()
        assert gc.get_freeze_count() > 0
        assert not any(found is made for found in gc.get_objects())
    finally:
        gc.unfreeze()
        sessionsService.stopService()


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
    argv = twistdArgv("--app", "myapp:app", "--listen", "tcp:0:interface=127.0.0.1")
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


# Not a Sessions of this module's own: --app would wrap sampleApp in it.
ownSessions: dict[str, Any] = {}


def ownWrapped() -> Any:
    from txsessions import Config, Sessions

    ownSessions["made"] = Sessions(Config(cookie="own"))
    return ownSessions["made"].wrap(sampleApp.resource())


def test_anAppWrappedAlreadyKeepsItsManager() -> None:
    service = makeService(options("--app", "tests.test_tap:ownWrapped"))
    browser = Browser(siteOf(service).resource)
    response, _ = browser.get("/")
    assert cookieValue(response, "own")
    assert resultOf(ownSessions["made"].count()) == 1


@pytest.mark.parametrize("scheme", ["sqlite", "lmdb"])
def test_aServiceStartedWithoutPrivilegesOpensTheDatabase(
    tmp_path: Any, scheme: str
) -> None:
    """
    Twisted's C{twist} runner calls C{startService} alone: the database is
    opened there too, not left a memory database (helper-29).
    """
    from txsessions.db.memory import MemoryDatabase

    service: Any = makeService(options("--database", f"{scheme}:{tmp_path / 'db'}"))
    [sessionsService] = [s for s in service if hasattr(s, "sessions")]
    sessionsService.startService()  # not the listening services: no port
    gc.unfreeze()
    database = sessionsService.sessions.database
    try:
        assert not isinstance(database, MemoryDatabase)
    finally:
        database.closeNow()


@pytest.mark.parametrize("scheme", ["sqlite", "lmdb"])
def test_aRelativeDatabasePathIsTakenFromWhereTwistdStarts(
    tmp_path: Any, monkeypatch: Any, scheme: str
) -> None:
    """
    The database is checked before twistd changes directory (--rundir)
    and opened after: its path is made absolute first (helper-27: the
    server used another file than the one checked).
    """
    monkeypatch.chdir(tmp_path)
    made = options("--database", f"{scheme}:sessions")
    assert made["database"] == f"{scheme}:{tmp_path / 'sessions'}"


def test_anLMDBDirectoryThatCannotBeMadeIsAUsageError(tmp_path: Any) -> None:
    # helper-26: a FileNotFoundError traceback.
    where = tmp_path / "missing" / "sessions"
    with pytest.raises(UsageError, match="cannot open the LMDB session database"):
        options("--database", f"lmdb:{where}")


def test_unusableDatabaseIsAUsageErrorNamingTheFile(tmp_path: Any) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 500)
    with pytest.raises(UsageError, match="broken.db"):
        options("--database", f"sqlite:{path}")


def test_twistdSaysClearlyWhenTheDatabaseIsUnusable(tmp_path: Any) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 500)
    code, output = runTwistd(tmp_path, "--database", f"sqlite:{path}")
    assertFailed(code)
    assert "broken.db" in output
    assert "Traceback" not in output


def test_noOptionsMakeTheDefaultConfigCheckingCSRF() -> None:
    assert options().config == Config(csrf=True)


def test_noCSRFTurnsTheCheckOff() -> None:
    assert options("--no-csrf").config == Config()


@pytest.mark.parametrize("timeout", ["3", "0"])
def test_theDatabaseTimeoutIsTheRedisDatabasesDeadline(
    monkeypatch: Any, timeout: str
) -> None:
    """
    C{--database-timeout} reaches the Redis database as its deadline (0 for
    none, which the database takes as a year: Redis refuses a write past
    its deadline).
    """
    import txsessions.db.redis

    made: list[tuple[Any, ...]] = []

    def recording(url: str, clock: Any = None, **kwargs: Any) -> MemoryDatabase:
        made.append((url, kwargs))
        return MemoryDatabase()

    monkeypatch.setattr(txsessions.db.redis, "RedisDatabase", recording)
    url = "redis://127.0.0.1:1/0"
    options("--database-timeout", timeout, "--database", url)
    assert made == [(url, {"deadline": float(timeout)})]


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--cookie", "mine"], "cookie", "mine"),
        (["--expires", "60"], "expires", 60.0),
        (["--idle-timeout", "1.5"], "idleTimeout", 1.5),
        (["--absolute-timeout", "3600"], "absoluteTimeout", 3600.0),
        (["--database-timeout", "2"], "databaseTimeout", 2.0),
        (["--database-timeout", "0"], "databaseTimeout", 0.0),
        (["--cookie-path", "/app"], "cookiePath", "/app"),
        (["--cookie-domain", "example.com"], "cookieDomain", "example.com"),
        (["--cookie-domain", "example.com"], "disableSubdomainPersistence", False),
        (["--same-site", "Strict"], "cookieSameSite", "strict"),
        (["--same-site", "STRICT"], "cookieSameSite", "strict"),
        (["--same-site", "None"], "cookieSameSite", "none"),
        (["--same-site", "omit"], "cookieSameSite", None),
        (["--force-secure-cookie"], "forceSecureCookie", True),
        (["--trust-proxy-headers"], "trustProxyHeaders", True),
        (["--no-http-only"], "cookieHTTPOnly", False),
        (["--allow-reclaim"], "allowReclaim", True),
    ],
)
def test_eachOptionReachesTheConfig(argv: list[str], field: str, value: Any) -> None:
    assert getattr(Config(), field) != value
    assert getattr(options(*argv).config, field) == value


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--expires", "-1"], "--expires takes a number of seconds, at least 0"),
        (["--idle-timeout", "soon"], "--idle-timeout takes a number of seconds"),
        (["--absolute-timeout", "inf"], "--absolute-timeout takes a number"),
        (["--database-timeout", "nan"], "--database-timeout takes a number"),
        (["--expires", "5", "--idle-timeout", "5"], "--expires .* --idle-timeout"),
        # A cookie with Max-Age=0: every session dropped at once.
        (["--expires", "0.4"], "^--expires must be at least 1 second; 0 means none"),
        (["--idle-timeout", "0.5"], "^--idle-timeout must be at least 1 second"),
        (["--absolute-timeout", ".9"], "^--absolute-timeout must be at least 1 "),
        (["--cookie-path", "app"], "cookie path 'app' must start with '/'"),
        (["--cookie-domain", "not a domain"], "'not a domain' is not a DNS name"),
        (
            ["--cookie", "__Host-sid", "--cookie-path", "/app"],
            "__Host- cookie needs --cookie-path='/' and no --cookie-domain",
        ),
        (["--same-site", "sometimes"], "--same-site takes Lax, Strict, None or omit"),
        (["--max-sessions", "many"], "--max-sessions takes a whole number"),
        (["--max-sessions", "-1"], "--max-sessions takes a whole number"),
        (
            ["--max-sessions", "5", "--database", "redis://127.0.0.1:1/0"],
            "Redis database has no maxSessions",
        ),
    ],
)
def test_badValuesAreUsageErrors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options(*argv)


def test_maxSessionsReachesTheDatabase() -> None:
    service = makeService(options("--max-sessions", "1"))
    browser = Browser(siteOf(service).resource)
    assert browser.get("/login")[0].code == 200
    assert browser.get("/login")[0].code == 503


def writeSecret(tmp_path: Any, *lines: str, mode: int = 0o600) -> str:
    path = tmp_path / "secret"
    path.write_text("".join(line + "\n" for line in lines))
    path.chmod(mode)
    return str(path)


def b64(key: bytes) -> str:
    import base64

    return base64.b64encode(key).decode("ascii")


def test_secretFileSealsWithTheFirstKeyAndOpensWithEvery(tmp_path: Any) -> None:
    new, old = generateKey(), generateKey()
    path = writeSecret(tmp_path, "# newest first", b64(new), "", b64(old))
    codec = options("--secret-file", path).config.encoding
    assert codec is not None
    assert CookieCodec([new]).decode("c", codec.encode("c", "v")) == "v"
    assert codec.decode("c", CookieCodec([old]).encode("c", "w")) == "w"


def test_secretFileTakesURLSafeBase64AndHex(tmp_path: Any) -> None:
    import base64

    first, second = generateKey(), generateKey()
    urlsafe = base64.urlsafe_b64encode(first).decode().rstrip("=")
    path = writeSecret(tmp_path, urlsafe, second.hex())
    assert readKeys(path) == [second, first]


def test_theCodecLastsAsLongAsTheSessions(tmp_path: Any) -> None:
    import time

    from txsessions.codec import CodecError

    key = generateKey()
    path = writeSecret(tmp_path, b64(key))
    days = 24 * 3600
    old = CookieCodec([key], clock=lambda: time.time() - 45 * days).encode("c", "v")
    sixtyDays = options("--secret-file", path, "--expires", str(60 * days))
    assert sixtyDays.config.encoding is not None
    assert sixtyDays.config.encoding.decode("c", old) == "v"
    default = options("--secret-file", path).config.encoding
    assert default is not None
    with pytest.raises(CodecError, match="expired"):
        default.decode("c", old)


@pytest.mark.parametrize(
    "option", ["--expires", "--idle-timeout", "--absolute-timeout"]
)
def test_anyLifetimeOverThirtyDaysStartsWithASecretFile(
    tmp_path: Any, option: str
) -> None:
    """
    The codec's maximum age follows the longest a session may wait for its
    client, whichever option sets it (helper-26: --idle-timeout was left
    out, and the configuration was refused).
    """
    path = writeSecret(tmp_path, b64(generateKey()))
    made = options("--secret-file", path, option, str(40 * 24 * 3600))
    assert getattr(made.config.encoding, "maxAge", 0) >= 40 * 24 * 3600


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "holds no key"),
        (["# only a comment"], "holds no key"),
        (["c2hvcnQ="], "line 1 of --secret-file .* is not a key"),
        (["#", "not base64 at all!"], "line 2 of --secret-file .* is not a key"),
        ([b64(bytes(32))], "line 1 of --secret-file .* is a weak key"),
        ([b64(b"ab" * 16)], "is a weak key"),
        ([b64(bytes(range(32)))], "is a weak key"),
        ([b64("Geheimes Passwort für Müllers!".encode())], "line 1 .* is a weak key"),
        (["{key}", "{key}"], "holds a key twice"),
    ],
)
def test_badSecretFilesAreUsageErrors(
    tmp_path: Any, lines: list[str], message: str
) -> None:
    key = b64(generateKey())
    path = writeSecret(tmp_path, *[line.format(key=key) for line in lines])
    with pytest.raises(UsageError, match=message) as raised:
        options("--secret-file", path)
    assert key not in str(raised.value)


def test_aWeakKeyIsNotPrinted(tmp_path: Any) -> None:
    weak = b64(bytes(32))
    path = writeSecret(tmp_path, weak)
    with pytest.raises(UsageError) as raised:
        options("--secret-file", path)
    assert weak not in str(raised.value)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620])
def test_aSecretFileOthersCanReadIsRefused(tmp_path: Any, mode: int) -> None:
    path = writeSecret(tmp_path, b64(generateKey()), mode=mode)
    with pytest.raises(UsageError, match=f"{path} may be read or changed by other"):
        options("--secret-file", path)


def test_aGroupReadableSecretFileIsAccepted(tmp_path: Any) -> None:
    path = writeSecret(tmp_path, b64(generateKey()), mode=0o640)
    assert options("--secret-file", path).config.encoding is not None


def test_aMissingSecretFileIsAUsageErrorNamingIt(tmp_path: Any) -> None:
    path = tmp_path / "missing"
    with pytest.raises(UsageError, match=f"cannot read --secret-file {path}: No such"):
        options("--secret-file", str(path))


def test_anUnreadableSecretFileIsAUsageErrorNamingIt(tmp_path: Any) -> None:
    with pytest.raises(UsageError, match=f"cannot read --secret-file {tmp_path}"):
        options("--secret-file", str(tmp_path))


def test_generateSecretPrintsAKeyTheSecretFileTakes(tmp_path: Any, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        options("--generate-secret")
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    path = writeSecret(tmp_path, printed.strip())
    (key,) = readKeys(path)
    assert len(key) == 32
    with pytest.raises(SystemExit):
        options("--generate-secret")
    assert capsys.readouterr().out != printed


def test_theSecretFileEncryptsTheDemosCookie(tmp_path: Any) -> None:
    key = generateKey()
    path = writeSecret(tmp_path, b64(key))
    browser = Browser(siteOf(makeService(options("--secret-file", path))).resource)
    response, _ = browser.get("/login")
    value = cookieValue(response, "mycookiesessionnameid")
    sessionID = CookieCodec([key]).decode("mycookiesessionnameid", value)
    assert isWellFormedID(sessionID)
    assert value != sessionID
    cookie = {"mycookiesessionnameid": value}
    assert browser.get("/secret", cookie)[1] == b"The cake is a lie!\n"
    assert browser.get("/secret", {"mycookiesessionnameid": sessionID})[0].code == 403


@pytest_twisted.ensureDeferred
async def test_twistdWithASecretFile(tmp_path: Any) -> None:
    key = generateKey()
    path = writeSecret(tmp_path, b64(key))
    argv = twistdArgv(
        "--secret-file",
        path,
        "--same-site",
        "Strict",
        "--expires",
        "600",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    )
    server = Server(argv, str(tmp_path))
    client = plainClient()
    try:
        base = await server.start()
        response = await client.get(base + "/login")
        assert response.code == 200
        (header,) = response.headers.getRawHeaders("set-cookie")
        assert "SameSite=Strict" in header
        assert "Max-Age=600" in header
        value = cookieValue(response, "mycookiesessionnameid")
        sessionID = CookieCodec([key]).decode("mycookiesessionnameid", value)
        assert isWellFormedID(sessionID) and value != sessionID
        cookies = {"mycookiesessionnameid": value}
        response = await client.get(base + "/secret", cookies=cookies)
        assert await response.text() == "The cake is a lie!\n"
        cookies = {"mycookiesessionnameid": sessionID}
        response = await client.get(base + "/secret", cookies=cookies)
        assert response.code == 403
    finally:
        await server.stop()
    assert b64(key) not in server.output


def test_twistdRefusesAWorldReadableSecretFile(tmp_path: Any) -> None:
    path = writeSecret(tmp_path, b64(generateKey()), mode=0o644)
    code, output = runTwistd(tmp_path, "--secret-file", path)
    assertFailed(code)
    assert f"{path} may be read or changed by other users" in output
    assert "Traceback" not in output


@pytest_twisted.ensureDeferred
async def test_metricsServedOnTheirOwnEndpoint() -> None:
    parent = makeService(
        options(
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--metrics",
            "tcp:0:interface=127.0.0.1",
        )
    )
    parent.startService()
    client = plainClient()
    try:
        metrics: Any = parent.getServiceNamed("metrics")  # type: ignore[attr-defined]
        port = (await metrics._waitingForPort).getHost().port
        response = await client.get(f"http://127.0.0.1:{port}/")
        assert response.code == 200
        figures = json.loads(await response.text())
        assert figures["live"] == 0 and figures["created"] == 0
    finally:
        await parent.stopService()


@pytest.mark.parametrize("name", ["metrics", "prometheus"])
def test_noMetricsEndpointUnlessAsked(name: str) -> None:
    parent: Any = makeService(options())
    with pytest.raises(KeyError):
        parent.getServiceNamed(name)


def test_aMisspelledDatabaseURLIsRefusedWithoutItsPassword() -> None:
    with pytest.raises(UsageError) as refused:
        options("--database", "redsi://app:s3cret@cache:6379/0")
    assert "unknown database URL 'redsi://app:***@cache:6379/0'" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_anAppThatCannotBeLoadedIsAUsageError() -> None:
    with pytest.raises(UsageError, match="cannot load --app no.such.module:app"):
        options("--app", "no.such.module:app")


@pytest.mark.parametrize("argv", [["--metrics", "bogus"], ["--listen", "tcp:notaport"]])
def test_aBadEndpointIsAUsageError(argv: list[str]) -> None:
    with pytest.raises(UsageError, match=re.escape(argv[0])):
        options(*argv)


def test_noPasswordInAnyURLMessage() -> None:
    from txsessions.db import withoutPassword

    assert withoutPassword("rediss://app:s3cret@cache:6379/0") == (
        "rediss://app:***@cache:6379/0"
    )
    assert withoutPassword("unix:///run/redis.sock?db=0&password=s3cret") == (
        "unix:///run/redis.sock?db=0&password=***"
    )
    with pytest.raises(UsageError) as refused:
        options("--database", "redis://app:Zx9/q+Lw@cache:6379/0")
    assert "Zx9" not in str(refused.value)


@pytest.mark.parametrize(
    "url, module, extra",
    [
        ("redis://127.0.0.1:6379/0", "txredisapi", "redis"),
        ("redis://127.0.0.1:6379/0", "hiredis", "redis"),
        ("lmdb:sessions", "lmdb", "lmdb"),
    ],
)
def test_aDatabaseWithoutItsExtraIsRefusedNamingTheExtra(
    url: str, module: str, extra: str, monkeypatch: Any
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(UsageError) as raised:
        options("--database", url)
    message = str(raised.value)
    assert f"pip install 'txsessions[{extra}]'" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "given, bound",
    [
        ("tcp:9100", "tcp:9100:interface=127.0.0.1"),
        ("9100", "tcp:9100:interface=127.0.0.1"),
        ("tcp:9100:interface=0.0.0.0", "tcp:9100:interface=0.0.0.0"),
        ("tcp6:9100", r"tcp6:9100:interface=\:\:1"),
        ("unix:/run/metrics.sock", "unix:/run/metrics.sock"),
    ],
)
def test_metricsEndpointsBindTheLoopbackUnlessTold(given: str, bound: str) -> None:
    parsed = options("--metrics", given, "--prometheus", given)
    assert parsed["metrics"] == parsed["prometheus"] == bound


def test_theDemoListensOnTheLoopbackUnlessTold() -> None:
    assert options()["listen"] == ["tcp:8080:interface=127.0.0.1"]
    assert options("--listen", "tcp:8080")["listen"] == ["tcp:8080"]
    assert options("--app", "tests.test_tap:sampleApp")["listen"] == ["tcp:8080"]


def test_helpSaysTheMetricsBindTheLoopback() -> None:
    text = " ".join(str(Options()).split())
    assert "binds 127.0.0.1 only (name one to reach it from elsewhere" in text
    assert "Prometheus's text format" in text and "Off unless given" in text


def test_prometheusWithoutItsExtraIsRefusedNamingIt(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(UsageError) as raised:
        options("--prometheus", "tcp:9101")
    assert "pip install 'txsessions[prometheus]'" in str(raised.value)


@pytest_twisted.ensureDeferred
async def test_prometheusServedOnItsOwnEndpointOnTheLoopback() -> None:
    parent = makeService(
        options("--listen", "tcp:0:interface=127.0.0.1", "--prometheus", "tcp:0")
    )
    parent.startService()
    client = plainClient()
    try:
        served: Any = parent.getServiceNamed("prometheus")  # type: ignore[attr-defined]
        address = (await served._waitingForPort).getHost()
        assert address.host == "127.0.0.1"
        response = await client.get(f"http://127.0.0.1:{address.port}/metrics")
        assert response.code == 200
        assert "txsessions_sessions_live 0.0" in await response.text()
    finally:
        await parent.stopService()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _waitFor(condition: Any, seconds: float) -> bool:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    for _ in range(int(seconds * 10)):
        if condition():
            return True
        await deferLater(reactor, 0.1, lambda: None)
    return bool(condition())


@pytest.mark.parametrize("scheme", ["sqlite", "lmdb"])
@pytest_twisted.ensureDeferred
async def test_twistdAsADaemonSavesSessionsAndStops(tmp_path: Any, scheme: str) -> None:
    """
    Daemonized (no -n), twistd forks after the plugin has made its service:
    a database whose threads were started before the fork would have none
    in the daemon, every write a 503 and SIGTERM ignored (helper-26).  The
    database is checked before the fork and opened after it.
    """
    import os
    import signal

    pidfile = tmp_path / "twistd.pid"
    log = tmp_path / "log"
    argv = [twistd(), "--pidfile", str(pidfile), "--logfile", str(log)]
    argv += ["txsessions", "--database", f"{scheme}:db"]  # relative: --rundir .
    argv += ["--listen", "tcp:0:interface=127.0.0.1"]
    subprocess.run(argv, timeout=60, cwd=tmp_path, check=True)
    assert await _waitFor(pidfile.exists, 30)
    pid = int(pidfile.read_text())
    try:

        def port() -> str | None:
            found = re.search(r"Site starting on (\d+)", log.read_text())
            return None if found is None else found.group(1)

        assert await _waitFor(port, 30)
        client = plainClient()
        base = f"http://127.0.0.1:{port()}"
        response = await client.get(base + "/login")
        assert response.code == 200
        sid = cookieValue(response, DEMO_COOKIE)
        response = await client.get(base + "/secret", cookies={DEMO_COOKIE: sid})
        assert await response.text() == "The cake is a lie!\n"
        os.kill(pid, signal.SIGTERM)
        assert await _waitFor(lambda: not _alive(pid), 15), "SIGTERM ignored"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("scheme", ["sqlite", "lmdb"])
@pytest.mark.parametrize("why", ["port taken", "pid file in use"])
def test_aServerThatCannotStartExits(tmp_path: Any, scheme: str, why: str) -> None:
    """
    twistd that cannot listen, or finds its pid file in use, exits with an
    error, rather than hang on the database's threads (helper-26).
    """
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if why == "port taken" else 0
        pidfile = tmp_path / "twistd.pid"
        if why == "pid file in use":
            import os

            pidfile.write_text(str(os.getpid()))  # this process: alive
        argv = [twistd(), "-n", "--pidfile", str(pidfile), "txsessions"]
        argv += ["--database", f"{scheme}:{tmp_path / 'db'}"]
        argv += ["--listen", f"tcp:{port}:interface=127.0.0.1"]
        result = subprocess.run(argv, timeout=20, cwd=tmp_path, capture_output=True)
    assert result.returncode != 0
