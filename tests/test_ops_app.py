"""
C{twistd txsessions --app} with an app whose module holds its own
L{Sessions} manager, as the README's tour (C{examples/tour.py}) does: its
C{@sessions.withSession} routes are served with that manager.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.python.usage import UsageError

from tests.support import Browser, cookieValue
from txsessions import Sessions
from txsessions.tap import Options, makeService

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def options(*argv: str) -> Options:
    made = Options()
    made.parseOptions(list(argv))
    return made


def siteOf(service: Any) -> Any:
    return [s for s in service if hasattr(s, "factory")][0].factory


def sessionsOf(service: Any) -> Sessions:
    [served] = [s for s in service if hasattr(s, "sessions")]
    sessions: Sessions = served.sessions
    return sessions


@pytest.fixture
def importable(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """
    Modules the test imports from C{examples/} or writes: forgotten after,
    so that each test has a fresh manager.
    """
    monkeypatch.syspath_prepend(str(EXAMPLES))
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def test_theTourIsServedWithItsOwnManager(importable: list[str]) -> None:
    """
    Every C{withSession} route of the tour answered 500: the app was
    wrapped in a second manager, and the routes refused its session.
    """
    importable.append("tour")
    service = makeService(options("--app", "tour:app", "--listen", "tcp:0"))
    browser = Browser(siteOf(service).resource)
    response, body = browser.get("/whoami")
    assert (response.code, body) == (200, b"nobody\n")
    response, body = browser.request("POST", "/login?user=bob")
    assert (response.code, body) == (200, b"welcome, bob\n")
    sid = cookieValue(response, "sid")  # the tour's Config, not the options'
    _, body = browser.get("/whoami", cookies={"sid": sid})
    assert body == b"bob\n"
    assert sessionsOf(service) is sys.modules["tour"].sessions


def test_theModulesManagerUsesTheDatabaseGiven(importable: list[str]) -> None:
    importable.append("tour")
    made = options("--app", "tour:app", "--database", "memory:")
    service = makeService(made)
    assert made.database is not None
    assert sessionsOf(service).database is made.database


def test_withoutADatabaseTheModulesManagerKeepsItsOwn(
    importable: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Without C{--database}, the module's manager keeps the database it was
    built with (helper-55: the default C{memory:} replaced a module's
    SQLite, leaving it open, and every session was lost at each restart);
    nothing else is opened.
    """
    (tmp_path / "persistentapp.py").write_text(
        textwrap.dedent(
            f"""
            from klein import Klein
            from txsessions import Config, Sessions
            from txsessions.db.sqlite import SQLiteDatabase

            app = Klein()
            database = SQLiteDatabase({str(tmp_path / "s.db")!r})
            sessions = Sessions(Config(cookie="sid"), database)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importable.append("persistentapp")
    made = options("--app", "persistentapp:app")
    try:
        service = makeService(made)
        module = sys.modules["persistentapp"]
        assert made.database is None and made.ownDatabase
        assert sessionsOf(service) is module.sessions
        assert sessionsOf(service).database is module.database
    finally:
        sys.modules["persistentapp"].database.closeNow()


def test_aModuleWithSeveralManagersIsAUsageError(
    importable: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "twomanagers.py").write_text(
        textwrap.dedent(
            """
            from klein import Klein
            from txsessions import Sessions

            app = Klein()
            users = Sessions()
            admins = Sessions()
            alias = users
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importable.append("twomanagers")
    with pytest.raises(UsageError) as caught:
        options("--app", "twomanagers:app")
    assert str(caught.value) == (
        "--app twomanagers:app: its module holds several Sessions managers "
        "(admins, users); give --app the Sessions.wrap resource of the one to use"
    )
