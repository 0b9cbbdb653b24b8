"""
The admin command, C{txsessions}: each command against SQLite, LMDB and
Redis, run as a user runs it (C{python -m txsessions}, a process of its
own) beside a server holding sessions in the same database, whose next
request sees the change.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.usage import UsageError

from tests.apps import kvApp
from tests.support import COOKIE, cookieValue, plainClient
from txsessions import Config, DestroyReason, Sessions
from txsessions.admin import AdminError, Options, administer, confirm
from txsessions.db import openDatabase
from txsessions.ids import generateSessionID, storeKey
from txsessions.interfaces import Lifetime, SessionChanges
from txsessions.records import OWNER_FIELD, OwnerMark

ROOT = Path(__file__).resolve().parent.parent
KINDS = ["sqlite", "lmdb", "redis"]
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def databaseURL(kind: str, tmp_path: Path, request: Any) -> str:
    if kind == "redis":
        server = request.getfixturevalue("redisServer")
        return f"{server.url}?prefix=a{os.urandom(6).hex()}:"
    return f"{kind}:{tmp_path / kind}"


def environment() -> dict[str, str]:
    # The source tree, from the working directory, and nothing else.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def txsessions(*args: str) -> Result:
    """
    Run C{python -m txsessions ARGS} in a process of its own, with no
    terminal (its standard input is closed).
    """
    out, err, code = await getProcessOutputAndValue(
        sys.executable,
        ["-m", "txsessions", *args],
        env=environment(),
        path=str(ROOT),
    )
    return Result(code, out.decode(), err.decode())


def txsessionsNow(*args: str) -> Result:
    """
    L{txsessions}, blocking: for tests that need no reactor.
    """
    done = subprocess.run(
        [sys.executable, "-m", "txsessions", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def inProcess(*args: str) -> Result:
    """
    Run a command line in this process, on the reactor: for databases no
    other handle in this process has open.
    """
    from twisted.internet import reactor

    options = Options()
    options.parseOptions(list(args))
    out, err = io.StringIO(), io.StringIO()
    code = await administer(options, reactor, out, err)
    return Result(code, out.getvalue(), err.getvalue())


def assertOneErrorLine(result: Result, code: int, text: str) -> None:
    assert result.code == code, result
    assert result.out == ""
    assert result.err.startswith("txsessions: ") and result.err.count("\n") == 1
    assert text in result.err
    assert "Traceback" not in result.err


@attrs.define
class Server:
    """
    A server with sessions (lasting an hour) in a database that the admin
    command, in another process, opens too.
    """

    url: str
    base: str
    sessions: Sessions
    database: Any
    events: list[tuple[str, DestroyReason]]

    async def login(self, user: str = "alice") -> str:
        response = await plainClient().get(f"{self.base}/set/user/{user}")
        assert response.code == 200
        await response.content()
        return cookieValue(response, COOKIE)

    async def session(self, sid: str) -> Any:
        """
        @return: what the next request with C{sid} finds: C{isNew} and the
            values.
        """
        response = await plainClient().get(f"{self.base}/all", cookies={COOKIE: sid})
        return await response.json()

    async def eventsDelivered(self) -> None:
        if hasattr(self.database, "eventsDelivered"):
            await self.database.eventsDelivered()


@pytest.fixture(params=KINDS)
def serverURL(request: Any, tmp_path: Path) -> str:
    # A synchronous fixture: a Redis server missing skips the Redis
    # parameter alone (a skip inside the asynchronous fixture errored all).
    return databaseURL(request.param, tmp_path, request)


@pytest_twisted.async_yield_fixture
async def server(serverURL: str, listen: Any) -> AsyncIterator[Server]:
    url = serverURL
    database = openDatabase(url)
    events: list[tuple[str, DestroyReason]] = []
    database.listen(lambda key, reason: events.append((key, reason)))
    sessions = Sessions(Config(cookie=COOKIE, expires=3600), database)
    base, _ = listen(sessions.wrap(kvApp(sessions).resource()))
    yield Server(url, base, sessions, database, events)
    await sessions.close()


# Each command beside a running server


@pytest_twisted.ensureDeferred
async def test_countCountsTheServersSessions(server: Server) -> None:
    await server.login("alice")
    await server.login("bob")
    assert await txsessions("--database", server.url, "count") == Result(0, "2\n", "")
    result = await txsessions("--database", server.url, "count", "--json")
    assert result.json() == {"count": 2}


@pytest_twisted.ensureDeferred
async def test_listShowsKeyPrefixesNeverIds(server: Server) -> None:
    sid = await server.login()
    key = storeKey(sid)
    result = await txsessions("--database", server.url, "list")
    assert result.code == 0 and result.err == ""
    header, row = result.out.splitlines()
    assert header.split() == ["KEY", "CREATED", "EXPIRES", "SIZE"]
    assert re.fullmatch(rf"{key[:12]}  {ISO}  {ISO}  +{4 + 7}", row), row
    assert key[:13] not in result.out and sid[:13] not in result.out


@pytest_twisted.ensureDeferred
async def test_listJSON(server: Server) -> None:
    sid = await server.login()
    result = await txsessions("--json", "--database", server.url, "list")
    (described,) = result.json()["sessions"]
    assert described["key"] == storeKey(sid)[:12]
    assert described["size"] == len("user") + len('"alice"')
    assert re.fullmatch(ISO, described["created"])
    assert re.fullmatch(ISO, described["expires"])


@pytest_twisted.ensureDeferred
async def test_showBySessionIDOrKeyPrefix(server: Server) -> None:
    sid = await server.login()
    key = storeKey(sid)
    for given in [sid, key[:8]]:
        result = await txsessions("--database", server.url, "show", "--", given)
        assert result.code == 0, result
        lines = result.out.splitlines()
        assert lines[0] == f"key      {key[:12]}"
        assert re.fullmatch(f"created  {ISO}", lines[1])
        assert re.fullmatch(f"expires  {ISO}", lines[2])
        assert lines[3] == "size     11 bytes"
        assert json.loads("\n".join(lines[5:])) == {"user": "alice"}
        assert sid not in result.out and key[:13] not in result.out


@pytest_twisted.ensureDeferred
async def test_showJSON(server: Server) -> None:
    sid = await server.login()
    result = await txsessions("--database", server.url, "show", "--json", "--", sid)
    document = result.json()
    assert document["values"] == {"user": "alice"}
    assert document["flashes"] == {} and document["immutable"] == []
    assert document["key"] == storeKey(sid)[:12] and document["size"] == 11


@pytest_twisted.ensureDeferred
async def test_destroyByKeyPrefixEndsTheSessionOnTheNextRequest(
    server: Server,
) -> None:
    sid = await server.login()
    other = await server.login("bob")
    key = storeKey(sid)
    result = await txsessions("--database", server.url, "destroy", key[:12])
    assert result == Result(0, f"destroyed session {key[:12]}\n", "")
    assert await server.session(sid) == {"isNew": True, "values": {}}
    assert (await server.session(other))["values"] == {"user": "bob"}


@pytest_twisted.ensureDeferred
async def test_destroyBySessionIDEndsTheSessionOnTheNextRequest(
    server: Server,
) -> None:
    sid = await server.login()
    result = await txsessions("--database", server.url, "destroy", "--json", "--", sid)
    assert result.json() == {"destroyed": 1, "key": storeKey(sid)[:12]}
    assert await server.session(sid) == {"isNew": True, "values": {}}


@pytest_twisted.ensureDeferred
async def test_destroyAllEndsEverySessionOnTheNextRequest(server: Server) -> None:
    sids = [await server.login("alice"), await server.login("bob")]
    result = await txsessions("--database", server.url, "destroy-all", "--yes")
    assert result == Result(0, "destroyed 2 sessions\n", "")
    for sid in sids:
        assert await server.session(sid) == {"isNew": True, "values": {}}
    result = await txsessions("-d", server.url, "destroy-all", "--yes", "--json")
    assert result.json() == {"destroyed": 0}


@pytest_twisted.ensureDeferred
async def test_destroyAllWithoutATerminalOrYesRefuses(server: Server) -> None:
    sid = await server.login()
    result = await txsessions("--database", server.url, "destroy-all")
    assertOneErrorLine(result, 2, "add --yes")
    assert (await server.session(sid))["values"] == {"user": "alice"}


@pytest_twisted.ensureDeferred
async def test_purgeExpiredBesideAServerLeavesLiveSessions(server: Server) -> None:
    sid = await server.login()
    result = await txsessions("--database", server.url, "purge-expired", "--json")
    assert result.json() == {"purged": 0}
    assert (await server.session(sid))["values"] == {"user": "alice"}


@pytest_twisted.ensureDeferred
async def test_redisServersHearOfAnAdminDestroy(server: Server) -> None:
    if not server.url.startswith("redis"):
        pytest.skip("only Redis tells other processes' listeners")
    sid = await server.login()
    await server.eventsDelivered()  # its subscription is in place
    await txsessions("--database", server.url, "destroy", "--", sid)
    await server.eventsDelivered()
    assert server.events == [(storeKey(sid), DestroyReason.admin)]


@pytest_twisted.ensureDeferred
async def test_unknownSessionIsExit1(server: Server) -> None:
    await server.login()
    sid = generateSessionID()
    result = await txsessions("--database", server.url, "show", "--", sid)
    assertOneErrorLine(
        result, 1, f"no live session matches {sid[:6]}\N{HORIZONTAL ELLIPSIS}"
    )
    result = await txsessions("--database", server.url, "destroy", "0123abcd")
    assertOneErrorLine(result, 1, "no live session matches 0123abcd")


# purge-expired, after no server ran


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
@pytest_twisted.ensureDeferred
async def test_purgeExpiredRemovesSessionsThatEndedWhileNoServerRan(
    kind: str, tmp_path: Path, clock: Any, request: Any
) -> None:
    url = databaseURL(kind, tmp_path, request)
    database = openDatabase(url, clock)
    await database.save("gone", SessionChanges(create=True, lifetime=Lifetime(0, 10)))
    await database.save("kept", SessionChanges(create=True, lifetime=Lifetime(0, None)))
    await database.close()  # before its expiration ran
    assert await txsessions("--database", url, "count") == Result(0, "1\n", "")
    result = await txsessions("--database", url, "purge-expired")
    assert result == Result(0, "purged 1 expired session\n", "")
    result = await txsessions("--database", url, "purge-expired", "--json")
    assert result.json() == {"purged": 0}
    reopened = openDatabase(url, clock)
    try:
        assert [info.key for info in await reopened.sessions()] == ["kept"]
        assert clock.getDelayedCalls() == []
    finally:
        await reopened.close()


@pytest_twisted.ensureDeferred
async def test_purgeExpiredOnRedisSaysRedisExpiresItself(
    tmp_path: Path, request: Any
) -> None:
    url = databaseURL("redis", tmp_path, request)
    result = await txsessions("--database", url, "purge-expired")
    assert result == Result(
        0, "purged 0 expired sessions (Redis removes expired sessions itself)\n", ""
    )


# Naming a session


async def sqliteWith(tmp_path: Path, *keys: str) -> str:
    url = f"sqlite:{tmp_path / 'sessions.db'}"
    database = openDatabase(url)
    for key in keys:
        changes = SessionChanges(create=True, lifetime=Lifetime(0, None))
        await database.save(key, changes)
    await database.close()
    return url


class SlowWriter:
    """
    The time of a SQLite or LMDB database's writer thread (its C{time}
    module) as a long change sees it: each reading comes three seconds
    after the one before.
    """

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 3.0
        return self.now


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
@pytest_twisted.ensureDeferred
async def test_aChangeLongerThanARequestsDeadlineIsMade(
    kind: str, tmp_path: Path, request: Any, monkeypatch: Any
) -> None:
    """
    The command gives the database no request's deadline (3 s), which
    would undo a destroy-all taking longer: only its C{--timeout}.
    """
    from txsessions.db import _writer

    url = databaseURL(kind, tmp_path, request)
    database = openDatabase(url)
    for key in ["a" * 64, "b" * 64]:
        await database.save(
            key, SessionChanges(create=True, lifetime=Lifetime(0, None))
        )
    await database.close()
    monkeypatch.setattr(_writer, "time", SlowWriter())
    result = await inProcess("-d", url, "--timeout", "1000", "destroy-all", "--yes")
    assert result == Result(0, "destroyed 2 sessions\n", "")


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
@pytest_twisted.ensureDeferred
async def test_aChangeNotMadeWithinTheTimeoutIsNotMade(
    kind: str, tmp_path: Path, request: Any, monkeypatch: Any
) -> None:
    """
    A change the database could not make within C{--timeout} is not made
    later: the command fails, and every session is still there.
    """
    from txsessions.db import _writer

    url = databaseURL(kind, tmp_path, request)
    database = openDatabase(url)
    await database.save(
        "a" * 64, SessionChanges(create=True, lifetime=Lifetime(0, None))
    )
    await database.close()
    monkeypatch.setattr(_writer, "time", SlowWriter())
    result = await inProcess("-d", url, "--timeout", "5", "destroy-all", "--yes")
    assertOneErrorLine(result, 3, "before its deadline; it was not made")
    monkeypatch.undo()
    assert await inProcess("-d", url, "count") == Result(0, "1\n", "")


@pytest_twisted.ensureDeferred
async def test_anAmbiguousPrefixIsRefused(tmp_path: Path) -> None:
    url = await sqliteWith(tmp_path, "abcdef01" + "0" * 56, "abcdef01" + "1" * 56)
    for command in ["show", "destroy"]:
        result = await inProcess("--database", url, command, "abcdef01")
        assertOneErrorLine(result, 2, "abcdef01 is ambiguous: 2 sessions")
    assert (await inProcess("--database", url, "count")).out == "2\n"
    result = await inProcess("--database", url, "destroy", "abcdef010")
    assert result == Result(0, "destroyed session abcdef010000\n", "")


@pytest_twisted.ensureDeferred
async def test_aShortPrefixIsAUsageError(tmp_path: Path) -> None:
    url = await sqliteWith(tmp_path, "abcdef01" + "0" * 56)
    for given in ["abcdef0", "not-hex!", "ghijklmn"]:
        result = await inProcess("--database", url, "show", given)
        assertOneErrorLine(result, 2, "neither a session id nor a store key prefix")


@pytest_twisted.ensureDeferred
async def test_aPrefixMayBeUppercaseOrEndInAnEllipsis(tmp_path: Path) -> None:
    url = await sqliteWith(tmp_path, "abcdef01" + "0" * 56)
    for given in ["ABCDEF01", "abcdef010000\N{HORIZONTAL ELLIPSIS}"]:
        result = await inProcess("--database", url, "show", "--json", given)
        assert result.json()["key"] == "abcdef010000"


@pytest_twisted.ensureDeferred
async def test_anIDStartingWithADashIsNoOption(tmp_path: Path) -> None:
    sid = "-fa" + "A" * 40
    url = await sqliteWith(tmp_path, storeKey(sid))
    for argv in [["show", sid, "--json"], ["show", "--json", "--", sid]]:
        result = await inProcess("-d", url, *argv)
        assert result.json()["key"] == storeKey(sid)[:12]
    result = await inProcess("-d", url, "destroy", sid)
    assert result == Result(0, f"destroyed session {storeKey(sid)[:12]}\n", "")


@pytest_twisted.ensureDeferred
async def test_errorsNeverShowAWholeID(tmp_path: Path) -> None:
    url = await sqliteWith(tmp_path)
    sid = generateSessionID()
    result = await inProcess("--database", url, "destroy", "--", sid)
    assertOneErrorLine(result, 1, f"no live session matches {sid[:6]}")
    assert sid[:7] not in result.err


@pytest_twisted.ensureDeferred
async def test_anEmptyDatabase(tmp_path: Path) -> None:
    url = await sqliteWith(tmp_path)
    assert await inProcess("-d", url, "count") == Result(0, "0\n", "")
    assert (await inProcess("-d", url, "list")).out.split() == [
        "KEY",
        "CREATED",
        "EXPIRES",
        "SIZE",
    ]
    assert (await inProcess("-d", url, "list", "--json")).json() == {"sessions": []}


@pytest_twisted.ensureDeferred
async def test_showTextSectionsForFlashesAndImmutables(tmp_path: Path) -> None:
    url = await sqliteWith(tmp_path)
    database = openDatabase(url)
    fields = {"n": "3", "\x00fnotice": '"hi"', "\x00iplan": "1", "plan": '"gold"'}
    key = "f" * 64
    await database.save(
        key, SessionChanges(create=True, lifetime=Lifetime(0, None), updated=fields)
    )
    await database.close()
    result = await inProcess("-d", url, "show", "ffffffff")
    assert result.out == (
        "key      ffffffffffff\n"
        "created  1970-01-01T00:00:00Z\n"
        "expires  never\n"
        "size     31 bytes\n"
        "values\n"
        '  {\n    "n": 3,\n    "plan": "gold"\n  }\n'
        "flashes\n"
        '  {\n    "notice": "hi"\n  }\n'
        "immutable\n"
        '  [\n    "plan"\n  ]\n'
    )
    result = await inProcess("-d", url, "show", "--json", "ffffffff")
    assert result.json() == {
        "key": "ffffffffffff",
        "created": "1970-01-01T00:00:00Z",
        "expires": None,
        "size": 31,
        "values": {"n": 3, "plan": "gold"},
        "flashes": {"notice": "hi"},
        "immutable": ["plan"],
    }


# Usage


def test_theMemoryDatabaseIsRefused() -> None:
    result = txsessionsNow("--database", "memory:", "count")
    assertOneErrorLine(result, 2, "memory: database lives inside one server process")


def test_aDatabaseIsRequired() -> None:
    assertOneErrorLine(txsessionsNow("count"), 2, "--database URL is required")


def test_aCommandIsRequired(tmp_path: Path) -> None:
    result = txsessionsNow("--database", f"sqlite:{tmp_path}/x")
    assertOneErrorLine(result, 2, "name a command")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--database", "sqlite:{tmp}/none.db", "count"], "no SQLite session database"),
        (["--database", "lmdb:{tmp}", "count"], "no LMDB session database"),
        (["--database", "mysql://x", "count"], "unknown database URL"),
        (["--database", "sqlite:{tmp}/none.db", "frobnicate"], "Unknown command"),
        (["--database", "sqlite:{tmp}/none.db", "count", "--all"], "--all"),
        (["--database", "sqlite:{tmp}/none.db", "show"], "show takes one session"),
        (["-d", "sqlite:{tmp}/x.db", "destroy", "a", "b"], "destroy takes one"),
        (["-d", "sqlite:{tmp}/x.db", "--timeout", "soon", "count"], "--timeout"),
        (["-d", "sqlite:{tmp}/x.db", "--timeout", "-1", "count"], "above 0"),
        (["-d", "sqlite:{tmp}/x.db", "--timeout", "nan", "count"], "above 0"),
        (["-d", "redis://127.0.0.1:1/0", "--cookie", "sid", "count"], "--secret-file"),
    ],
)
def test_usageErrors(argv: list[str], message: str, tmp_path: Path) -> None:
    from twisted.python.usage import UsageError

    with pytest.raises(UsageError, match=re.escape(message)):
        Options().parseOptions([a.format(tmp=tmp_path) for a in argv])


@pytest.mark.parametrize("contents", ["another app's tables", "not SQLite"])
def test_aFileThatHoldsNoSessionsIsLeftAlone(tmp_path: Path, contents: str) -> None:
    """
    The command names the server's database; a file that is not one (a
    typo naming the app's own database) is refused, and left as it was: no
    sessions table added, its journal mode unchanged (helper-26).
    """
    import sqlite3

    from twisted.python.usage import UsageError

    path = tmp_path / "app.db"
    if contents == "not SQLite":
        path.write_bytes(b"garbage" * 500)
    else:
        with sqlite3.connect(path) as made:
            made.execute("CREATE TABLE users (name TEXT)")
        made.close()
    before = path.read_bytes()
    with pytest.raises(UsageError, match="holds no txsessions sessions"):
        Options().parseOptions(["--database", f"sqlite:{path}", "count"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_anLMDBEnvironmentThatHoldsNoSessionsIsLeftAlone(tmp_path: Path) -> None:
    """
    As for SQLite: an LMDB environment that is not the server's database
    (another application's) is refused, its keys left as they were (helper-42:
    the command added txsessions' two databases to it and printed 0).
    """
    lmdb = pytest.importorskip("lmdb")
    path = tmp_path / "app"
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"user:1", b"alice")
    env.close()
    with pytest.raises(UsageError, match="holds no txsessions sessions"):
        Options().parseOptions(["--database", f"lmdb:{path}", "count"])
    env = lmdb.open(str(path), readonly=True)
    with env.begin() as txn:
        assert [key for key, _ in txn.cursor()] == [b"user:1"]
    env.close()
    # An environment holding txsessions' database (as the server made it).
    env = lmdb.open(str(tmp_path / "sessions"), max_dbs=2)
    env.open_db(b"txsessions")
    env.close()
    Options().parseOptions(["--database", f"lmdb:{tmp_path / 'sessions'}", "count"])


@pytest.mark.parametrize(
    "url",
    [
        "redis://u:hunter@2secret@h:6379/0",
        "redis+sentinel://u:hunter@2secret@h:26379/svc",
        "redis://a@b:hunter@2secret@h:6379/0",
        "unix:///run/redis.sock?db=0&password=hunter#2secret",
        "redis://u:hunter?2secret@h:6379/0",
        "redis://u:hunter#2secret@h:6379/0",
        "redis+sentinel://u:hunter#2secret@h:26379/svc",
        "redis://h:6379?password=hunter@2secret",
    ],
)
def test_theConfirmationHidesAPasswordHoldingAnAtOrAHash(url: str) -> None:
    """
    The whole password is masked, however the URL spells it: an C{@} in it
    (the last C{@} ends it, as the URL's parser reads it), a C{?} or C{#}
    in it, or a C{#} or C{@} in a C{password=} parameter (helper-42: the
    prompt showed C{***@2secret@h}; helper-47: a C{?} or C{#} left it whole).
    """
    from txsessions.db import withoutPassword

    options = Options()
    options.parseOptions(["-d", url, "destroy-all"])
    err = io.StringIO()
    confirm(options, Terminal("yes\n"), err)
    assert "2secret" not in err.getvalue() and "hunter" not in err.getvalue()
    assert "2secret" not in withoutPassword(url)


@pytest.mark.parametrize("command", ["count", "destroy-all"])
def test_aCommandsVersionIsTxsessionsVersion(command: str) -> None:
    """
    C{--version} after a command prints txsessions' version, as before it
    (helper-42: Twisted's), and each command's help says so.
    """
    from txsessions import __version__

    result = txsessionsNow("--database", "redis://h/0", command, "--version")
    assert (result.code, result.out) == (0, f"txsessions {__version__}\n")
    result = txsessionsNow("--database", "redis://h/0", command, "--help")
    assert "Twisted" not in result.out


@pytest.mark.parametrize(
    ("url", "command", "partly"),
    [
        ("redis://127.0.0.1:6379/0", "destroy-all", True),
        ("redis://127.0.0.1:6379/0", "count", False),
        ("redis://127.0.0.1:6379/0", "purge-expired", False),
        ("sqlite:{tmp}/x.db", "destroy-all", False),
    ],
)
def test_aTimeoutSaysWhenSomeChangesMayBeMade(
    tmp_path: Path, url: str, command: str, partly: bool
) -> None:
    """
    A Redis destroy-all that runs out of time has destroyed some sessions
    (in batches): the message says so, rather than that nothing answered
    (helper-26).  SQLite undoes it all.
    """
    from txsessions.admin import timedOut

    options = Options()
    url = url.format(tmp=tmp_path)
    if url.startswith("sqlite:"):
        (tmp_path / "x.db").write_bytes(b"")
        import sqlite3

        sqlite3.connect(tmp_path / "x.db").execute("CREATE TABLE txsessions (k)")
    options.parseOptions(["--database", url, command])
    said = timedOut(options)
    assert said.startswith("the database did not answer within 30 seconds")
    assert ("some sessions may be gone" in said) is partly


def test_aUsageErrorIsOneLineAndExit2(tmp_path: Path) -> None:
    result = txsessionsNow("--database", f"sqlite:{tmp_path}/none.db", "count")
    assertOneErrorLine(result, 2, "no SQLite session database at")


def test_helpListsTheCommands() -> None:
    result = txsessionsNow("--help")
    assert result.code == 0
    for command in ["count", "list", "show", "destroy", "destroy-all"]:
        assert f"    {command} " in result.out
    assert "purge-expired" in result.out
    assert "Redis removes expired sessions itself" in (
        txsessionsNow("purge-expired", "--help").out.replace("\n", " ")
    )


def test_optionsMayFollowTheCommand(tmp_path: Path) -> None:
    options = Options()
    options.parseOptions(["count", "--database", "redis://h/0", "--json"])
    assert (options.url, options.asJSON) == ("redis://h/0", True)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "abcdef012345", "--json", "--database", "redis://h/0"],
        ["--database", "redis://h/0", "destroy", "abcdef012345", "--json"],
        ["show", "--json", "abcdef012345", "-d", "redis://h/0"],
    ],
)
def test_optionsMayFollowTheSessionID(argv: list[str]) -> None:
    options = Options()
    options.parseOptions(argv)
    assert (options.url, options.asJSON) == ("redis://h/0", True)
    assert options.subOptions.given == "abcdef012345"


def test_afterTheDoubleDashEverythingIsTheSessionID() -> None:
    options = Options()
    with pytest.raises(UsageError, match="takes one session id"):
        options.parseOptions(
            ["-d", "redis://h/0", "show", "--", "abcdef012345", "--json"]
        )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def destroyAllOptions(*extra: str) -> Options:
    options = Options()
    options.parseOptions(["-d", "redis://h/0", "destroy-all", *extra])
    return options


def test_destroyAllGoesOnWhenYesIsTyped() -> None:
    err = io.StringIO()
    confirm(destroyAllOptions(), Terminal("yes\n"), err)
    assert "Type yes to go on" in err.getvalue()


def test_destroyAllStopsUnlessYesIsTyped() -> None:
    for answer in ["no\n", "y\n", ""]:
        with pytest.raises(AdminError, match="not confirmed") as raised:
            confirm(destroyAllOptions(), Terminal(answer), io.StringIO())
        assert raised.value.code == 1


def test_destroyAllWithYesAsksNothing() -> None:
    err = io.StringIO()
    confirm(destroyAllOptions("--yes"), io.StringIO(""), err)
    assert err.getvalue() == ""


def test_theConfirmationHidesARedisPassword() -> None:
    options = Options()
    options.parseOptions(["-d", "redis://u:s3cret@h:6379/0", "destroy-all"])
    err = io.StringIO()
    confirm(options, Terminal("yes\n"), err)
    assert "s3cret" not in err.getvalue() and "redis://u:***@h:6379/0" in err.getvalue()


@pytest_twisted.ensureDeferred
async def test_anUnreachableRedisIsExit3(request: Any) -> None:
    from tests.redis import freePort

    port = freePort()
    url = f"redis://127.0.0.1:{port}/0"
    result = await txsessions("--database", url, "--timeout", "1", "count")
    assertOneErrorLine(
        result, 3, f"the connection to Redis at 127.0.0.1:{port} was refused"
    )


def test_theConsoleScriptIsDeclared() -> None:
    tomllib = pytest.importorskip("tomllib")

    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"]["txsessions"] == "txsessions.admin:main"


def test_aTimeBeyondWhatADateShowsIsPrintedAsANumber() -> None:
    from txsessions._admincommands import showTime

    assert showTime(1e12) == "1000000000000.0"
    assert showTime(0) == "1970-01-01T00:00:00Z"


def test_versionIsTxsessionsVersion() -> None:
    import importlib.metadata

    import txsessions

    version = importlib.metadata.version("txsessions")
    assert txsessions.__version__ == version
    assert txsessionsNow("--version") == Result(0, f"txsessions {version}\n", "")


# Owners (issue 19): list --owner, destroy --owner


async def owned(server: Server, owner: str, agent: str = "Firefox/1") -> str:
    """
    Store a session of C{owner} in the server's database, as a login with
    C{Session.setOwner} does.

    @return: its session id.
    """
    from twisted.internet import reactor

    sid = generateSessionID()
    now = reactor.seconds()
    changes = SessionChanges(
        create=True,
        lifetime=Lifetime(now, now + 3600),
        updated={
            "user": json.dumps(owner),
            OWNER_FIELD: OwnerMark(owner, agent, now).encode(),
        },
    )
    assert await server.database.save(storeKey(sid), changes) == {}
    return sid


@pytest_twisted.ensureDeferred
async def test_listOwnerShowsThatOwnersSessionsOnly(server: Server) -> None:
    phone, laptop = await owned(server, "alice", "Phone"), await owned(server, "alice")
    await owned(server, "bob")
    result = await txsessions("-d", server.url, "list", "--owner", "alice")
    assert result.code == 0 and result.err == ""
    header, *rows = result.out.splitlines()
    assert header.split() == [
        "KEY",
        "CREATED",
        "LAST",
        "SEEN",
        "EXPIRES",
        "USER",
        "AGENT",
    ]
    assert sorted(row.split()[0] for row in rows) == sorted(
        storeKey(sid)[:12] for sid in (phone, laptop)
    )
    assert re.fullmatch(
        rf"{storeKey(phone)[:12]}  {ISO}  {ISO}  {ISO}  Phone",
        next(row for row in rows if "Phone" in row),
    )
    assert phone[:13] not in result.out and laptop[:13] not in result.out


@pytest_twisted.ensureDeferred
async def test_listOwnerJSON(server: Server) -> None:
    sid = await owned(server, "alice")
    result = await txsessions("-d", server.url, "list", "--owner", "alice", "--json")
    (described,) = result.json()["sessions"]
    assert described["key"] == storeKey(sid)[:12]
    assert (described["owner"], described["userAgent"]) == ("alice", "Firefox/1")
    assert re.fullmatch(ISO, described["lastSeen"])
    result = await txsessions("-d", server.url, "list", "--owner", "carol", "--json")
    assert result.json() == {"sessions": []}


@pytest_twisted.ensureDeferred
async def test_destroyOwnerEndsThatOwnersSessionsOnTheNextRequest(
    server: Server,
) -> None:
    first, second = await owned(server, "alice"), await owned(server, "alice")
    bob = await owned(server, "bob")
    await server.eventsDelivered()
    result = await txsessions("-d", server.url, "destroy", "--owner", "alice", "--yes")
    assert result == Result(0, "destroyed 2 sessions\n", "")
    assert (await server.session(first))["isNew"]
    assert (await server.session(second))["isNew"]
    assert (await server.session(bob))["values"] == {"user": "bob"}
    if server.url.startswith("redis"):
        await server.eventsDelivered()
        assert sorted(server.events) == sorted(
            (storeKey(sid), DestroyReason.owner) for sid in (first, second)
        )
    result = await txsessions(
        "-d", server.url, "destroy", "--owner", "alice", "--yes", "--json"
    )
    assert result.json() == {"destroyed": 0, "owner": "alice"}


@pytest_twisted.ensureDeferred
async def test_destroyOwnerWithoutATerminalOrYesRefuses(server: Server) -> None:
    sid = await owned(server, "alice")
    result = await txsessions("-d", server.url, "destroy", "--owner", "alice")
    assertOneErrorLine(result, 2, "add --yes")
    assert (await server.session(sid))["values"] == {"user": "alice"}


def test_destroyOwnerAsksNamingTheOwner() -> None:
    options = Options()
    options.parseOptions(["-d", "redis://h/0", "destroy", "--owner", "alice"])
    err = io.StringIO()
    confirm(options, Terminal("yes\n"), err)
    assert "every session of 'alice'" in err.getvalue()
    with pytest.raises(AdminError, match="not confirmed"):
        confirm(options, Terminal("no\n"), io.StringIO())


def test_destroyTakesAnIDOrAnOwnerNotBoth() -> None:
    options = Options()
    with pytest.raises(UsageError, match="not both"):
        options.parseOptions(
            ["-d", "redis://h/0", "destroy", "--owner", "alice", generateSessionID()]
        )


@pytest_twisted.ensureDeferred
async def test_aSignedCookieValueNamesItsSessionWithTheSecretFile(
    tmp_path: Path, listen: Any
) -> None:
    """
    A server with C{--secret-file} sends sealed cookie values: given the
    same file (and the cookie's name), C{show} and C{destroy} take one as
    they take an id.  Without it, the error says what is missing
    (helper-26: "no live session matches").
    """
    import base64

    from txsessions.codec import CookieCodec, generateKey

    key = generateKey()
    secret = tmp_path / "secret"
    secret.write_text(base64.b64encode(key).decode() + "\n")
    secret.chmod(0o600)
    url = f"sqlite:{tmp_path / 'sessions.db'}"
    database = openDatabase(url)
    sessions = Sessions(
        Config(cookie=COOKIE, expires=3600, encoding=CookieCodec([key])), database
    )
    base, _ = listen(sessions.wrap(kvApp(sessions).resource()))
    response = await plainClient().get(f"{base}/set/user/alice")
    assert response.code == 200
    sealed = cookieValue(response, COOKIE)

    result = await txsessions("--database", url, "show", "--", sealed)
    assert result.code == 1
    assert "--secret-file" in result.err and sealed not in result.err
    withSecret = ["--database", url, "--secret-file", str(secret)]
    result = await txsessions(*withSecret, "--cookie", COOKIE, "show", "--", sealed)
    assert result.code == 0, result
    assert json.loads(result.out.split("values\n", 1)[1]) == {"user": "alice"}
    assert sealed not in result.out
    result = await txsessions(*withSecret, "--cookie", "other", "show", "--", sealed)
    assert result.code == 1
    result = await txsessions(*withSecret, "--cookie", COOKIE, "destroy", sealed)
    assert result.code == 0, result
    assert (await txsessions("--database", url, "count")).out == "0\n"
    await sessions.close()
