"""
What the persistent databases (SQLite, LMDB) add: they survive a restart,
and say clearly when their file is unusable.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from typing import Any

import lmdb
import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.apps import servedAndWritten
from tests.db.test_conformance import create
from tests.support import COOKIE, setCookies
from txsessions import Config, DatabaseError, DestroyReason, Sessions
from txsessions.db import checkDatabaseURL, openDatabase
from txsessions.db import lmdb as txlmdb
from txsessions.db.sqlite import SQLiteDatabase
from txsessions.interfaces import Lifetime, SessionChanges, StoredSession

PERSISTENT = ["sqlite", "lmdb"]


def url(kind: str, tmp_path: Any) -> str:
    return f"{kind}:{tmp_path / ('sessions.db' if kind == 'sqlite' else 'sessions')}"


@pytest.mark.parametrize("kind", PERSISTENT)
@pytest_twisted.ensureDeferred
async def test_sessionsSurviveARestart(kind: str, tmp_path: Any, clock: Any) -> None:
    first = openDatabase(url(kind, tmp_path), clock)
    await create(first, "short", 10, a="1")
    await create(first, "long", 100, b="2")
    await create(first, "forever", None, c="3")
    await first.close()

    clock.advance(50)
    second = openDatabase(url(kind, tmp_path), clock)
    events: list[Any] = []
    second.listen(lambda *a: events.append(a))
    clock.advance(0)
    await second.count()
    assert events == [("short", DestroyReason.expired)]
    assert await second.load("long") == StoredSession(Lifetime(0, 100), {"b": "2"})
    assert await second.load("forever") == StoredSession(Lifetime(0, None), {"c": "3"})
    clock.advance(50)
    await second.count()
    assert events[1:] == [("long", DestroyReason.expired)]
    assert await second.count() == 1
    await second.close()
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_corruptSQLiteRowsAreNoSession(tmp_path: Any, clock: Any) -> None:
    path = tmp_path / "s.db"
    db = openDatabase(f"sqlite:{path}", clock)
    await create(db, "k", None, a="1")
    await db.close()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "UPDATE txsessions SET fields = 'cos\\nsystem\\n' WHERE key = 'k'"
        )
        connection.execute(
            "INSERT INTO txsessions (key, created, expires, fields) "
            "VALUES ('n', 'not a number', NULL, '{}')"
        )
        # Nested past the decoder's recursion limit (a RecursionError, not
        # a ValueError: a 503 on every request carrying it, before the fix).
        connection.execute(
            "INSERT INTO txsessions (key, created, expires, fields) "
            "VALUES ('deep', 0, NULL, ?)",
            ("[" * 100_000 + "]" * 100_000,),
        )
    connection.close()
    db = openDatabase(f"sqlite:{path}", clock)
    assert await db.load("k") is None
    assert await db.load("n") is None
    assert await db.load("deep") is None
    assert await db.save("k", SessionChanges(updated={"a": "2"})) is None
    await db.close()


@pytest_twisted.ensureDeferred
async def test_corruptLMDBRecordsAreRemovedAtStartUp(tmp_path: Any, clock: Any) -> None:
    path = tmp_path / "env"
    db = openDatabase(f"lmdb:{path}", clock)
    await create(db, "k", None, a="1")
    await create(db, "ok", None, b="2")
    await db.close()
    env = lmdb.open(str(path), max_dbs=1)
    table = env.open_db(b"txsessions")
    with env.begin(write=True, db=table) as txn:
        txn.put(b"k", b"\x80\x04\x95pickle")
        txn.put(b"j", json.dumps({"c": "x", "f": {}}).encode())
        # A time no float holds (an OverflowError), and a record nested
        # past the decoder's recursion limit (a RecursionError): before the
        # fix, either made opening the environment fail.
        txn.put(b"huge", json.dumps({"c": 10**400, "e": None, "f": {}}).encode())
        txn.put(b"deep", b"[" * 100_000 + b"]" * 100_000)
    env.close()
    db = openDatabase(f"lmdb:{path}", clock)
    assert await db.load("k") is None
    assert await db.load("j") is None
    assert await db.load("huge") is None
    assert await db.load("deep") is None
    assert await db.load("ok") == StoredSession(Lifetime(0, None), {"b": "2"})
    assert await db.count() == 1
    await db.close()


@pytest_twisted.ensureDeferred
async def test_corruptSQLiteExpiriesAreNoSession(tmp_path: Any, clock: Any) -> None:
    """
    A row whose expiry is text, infinite or a number no float holds is no
    session, and the file still opens: before the fix, opening it raised a
    bare C{TypeError} or C{OverflowError} (helper-37), and the infinite one
    was served as a session whose every save answered a 503 after it was
    committed.
    """
    path = tmp_path / "s.db"
    db = openDatabase(f"sqlite:{path}", clock)
    await create(db, "ok", 100, a="1")
    await db.close()
    bad = {"text": "'soon'", "infinite": "9e999", "huge": "'1e400'"}
    connection = sqlite3.connect(path)
    with connection:
        for key, expires in bad.items():
            connection.execute(
                "INSERT INTO txsessions (key, created, expires, fields) "
                f"VALUES (?, 0, {expires}, '{{}}')",
                (key,),
            )
    connection.close()
    db = SQLiteDatabase(str(path), clock=clock, maxSessions=2)
    for key in bad:
        assert await db.load(key) is None
        assert await db.save(key, SessionChanges(updated={"a": "2"})) is None
    assert await db.save("ok", SessionChanges(updated={"a": "2"})) == {}
    assert await db.load("ok") == StoredSession(Lifetime(0, 100), {"a": "2"})
    # Removed, not counted as live for ever (helper-39: they had filled
    # maxSessions, and were never purged).
    assert await db.count() == 1
    await create(db, "new", 100)
    assert not await db.destroy("infinite", DestroyReason.destroyed)
    await db.close()


@pytest_twisted.ensureDeferred
async def test_corruptSQLiteFieldsAreRemovedAtStartUp(
    tmp_path: Any, clock: Any
) -> None:
    """
    A row whose fields are not a JSON object of strings is no session to a
    load or a listing, and is removed when the file opens, as LMDB's are:
    it had counted as live for ever, in L{count} and against
    C{maxSessions}.  Fields stored as text that is not UTF-8 are such a
    row too (helper-55: the file had refused to open).
    """
    path = tmp_path / "s.db"
    db = SQLiteDatabase(str(path), clock=clock)
    for key in ("ok", "text", "list", "number", "deep", "notUTF8"):
        await create(db, key, None)
    await db.close()
    bad = {
        "text": "not json",
        "list": "[]",
        "number": '{"a":1}',
        "deep": "[" * 100_000 + "]" * 100_000,
    }
    connection = sqlite3.connect(path)
    with connection:
        for key, fields in bad.items():
            connection.execute(
                "UPDATE txsessions SET fields = ? WHERE key = ?", (fields, key)
            )
        connection.execute(
            "UPDATE txsessions SET fields = CAST(X'7BFF7D' AS TEXT) "
            "WHERE key = 'notUTF8'"
        )
    connection.close()
    db = SQLiteDatabase(str(path), clock=clock, maxSessions=2)
    try:
        assert [info.key for info in await db.sessions()] == ["ok"]
        assert await db.count() == 1
        await create(db, "new", None)
    finally:
        await db.close()
    connection = sqlite3.connect(path)
    keys = sorted(key for (key,) in connection.execute("SELECT key FROM txsessions"))
    connection.close()
    assert keys == ["new", "ok"]


@pytest_twisted.ensureDeferred
async def test_corruptLMDBExpiriesAreRemovedAtStartUp(
    tmp_path: Any, clock: Any
) -> None:
    """
    A record whose expiry is infinite, not a number or a boolean is removed
    when the environment opens, as any corrupt record: before the fix, an
    infinite one made opening it raise a bare C{OverflowError} (helper-37).
    """
    path = tmp_path / "env"
    db = openDatabase(f"lmdb:{path}", clock)
    await create(db, "ok", 100, b="2")
    await db.close()
    env = lmdb.open(str(path), max_dbs=1)
    table = env.open_db(b"txsessions")
    with env.begin(write=True, db=table) as txn:
        txn.put(b"inf", b'{"c":0,"e":1e999,"f":{}}')
        txn.put(b"nan", b'{"c":0,"e":NaN,"f":{}}')
        txn.put(b"bool", b'{"c":0,"e":true,"f":{}}')
        txn.put(b"minf", b'{"c":-Infinity,"e":null,"f":{}}')
    env.close()
    db = openDatabase(f"lmdb:{path}", clock)
    for key in ["inf", "nan", "bool", "minf"]:
        assert await db.load(key) is None
    assert await db.load("ok") == StoredSession(Lifetime(0, 100), {"b": "2"})
    assert await db.count() == 1
    await db.close()


_DIES_READING = """
import lmdb, sys
env = lmdb.open(sys.argv[1], max_dbs=2, map_size=1 << 30)
txn = env.begin()
print("reading", flush=True)
sys.stdin.read()
"""

_READERS = """
import lmdb, sys
print(lmdb.open(sys.argv[1], max_dbs=2, map_size=1 << 30).readers())
"""


@pytest_twisted.ensureDeferred
async def test_theReaderSlotOfAProcessThatDiedReadingIsFreed(
    tmp_path: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A process killed in a read transaction leaves its reader slot taken,
    keeping the pages it read from reuse until the file fills the map; the
    writer frees such slots (before the fix, only LMDB did, once no process
    had the environment open: never, for a server that keeps running).
    """
    monkeypatch.setattr(txlmdb, "READER_CHECK_INTERVAL", 0.0)
    path = str(tmp_path / "env")
    db = openDatabase(f"lmdb:{path}", clock)
    await create(db, "k", None, a="1")
    reader = subprocess.Popen(
        [sys.executable, "-c", _DIES_READING, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert await deferToThread(reader.stdout.readline) == "reading\n"
    reader.kill()
    await deferToThread(reader.wait)

    async def readers() -> str:
        done = await deferToThread(
            subprocess.run,
            [sys.executable, "-c", _READERS, path],
            check=True,
            capture_output=True,
            text=True,
        )
        return str(done.stdout)

    assert f" {reader.pid} " in await readers()
    await db.save("k", SessionChanges(updated={"a": "2"}))
    assert f" {reader.pid} " not in await readers()
    await db.close()


def test_unreadableSQLiteFileNamesTheFile(tmp_path: Any) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(DatabaseError, match="garbage.db"):
        openDatabase(f"sqlite:{path}")


def test_unreadableLMDBEnvironmentNamesIt(tmp_path: Any) -> None:
    path = tmp_path / "env"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(DatabaseError, match="env"):
        openDatabase(f"lmdb:{path}")


def test_anInMemorySQLiteDatabaseIsRefused(clock: Any) -> None:
    """
    An in-memory SQLite database is refused when it is opened: each of the
    database's threads had its own, empty, and every request was a 503.
    """
    for path in [
        ":memory:",
        "",
        "file:x?mode=memory&cache=shared",
        "file:%3Amemory%3A",
        "file:s.db?vfs=memdb",
    ]:
        with pytest.raises(DatabaseError, match="in-memory SQLite"):
            SQLiteDatabase(path, clock=clock)


def test_aFileWhoseNameSaysMemoryIsAFile() -> None:
    """
    A file whose name holds "memory" is a file (helper-39: it was refused
    as an in-memory database).
    """
    checkDatabaseURL("sqlite:file:memory-sessions.db")
    checkDatabaseURL("sqlite:/var/lib/memory/sessions.db")


def test_missingDirectoryIsAClearError(tmp_path: Any) -> None:
    with pytest.raises(DatabaseError, match="nowhere"):
        openDatabase(f"sqlite:{tmp_path / 'nowhere' / 's.db'}")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("sqlite:", "names no path"),
        ("lmdb:", "names no path"),
        ("sqlite::memory:", "in-memory SQLite"),
        ("sqlite:file::memory:?cache=shared", "in-memory SQLite"),
        ("redis2://x", "unknown"),
    ],
)
def test_badURLs(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        checkDatabaseURL(bad)


@pytest_twisted.ensureDeferred
async def test_lmdbReadsRunInline(tmp_path: Any, clock: Any) -> None:
    db = openDatabase(f"lmdb:{tmp_path / 'env'}", clock)
    await create(db, "k", None, a="1")
    assert db.load("k").called
    await db.close()


@pytest_twisted.ensureDeferred
async def test_sqliteLoadsRunInlineEvenWhileAnotherProcessWrites(
    tmp_path: Any, clock: Any
) -> None:
    """
    A load is one row by its key: it answers at once, from the last commit,
    even while another connection holds the write lock (WAL mode).
    """
    path = tmp_path / "s.db"
    db = openDatabase(f"sqlite:{path}", clock)
    await create(db, "k", None, a="1")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE txsessions SET fields = '{}' WHERE key = 'k'")
    try:
        loaded = db.load("k")
        assert loaded.called
        assert await loaded == StoredSession(Lifetime(0, None), {"a": "1"})
    finally:
        other.execute("ROLLBACK")
        other.close()
        await db.close()


@pytest_twisted.ensureDeferred
async def test_theRequestPathReadsSQLiteAtOnce(
    tmp_path: Any, listen: Any, monkeypatch: Any
) -> None:
    """
    A request reads its SQLite session through
    L{SQLiteDatabase.loadAtOnce}, in the reactor thread, not through
    C{load} and its L{Deferred}; when the file is busy it is read in the
    reading thread instead, and SQLite failing otherwise is a 503, with no
    cookie.
    """
    database: Any = openDatabase(f"sqlite:{tmp_path / 's.db'}")
    sessions = Sessions(Config(cookie=COOKIE), database)
    try:
        base, client, cookies = await servedAndWritten(
            sessions, listen, "/set/user/dora"
        )
        load = database.load

        def notThisWay(key: str) -> Any:
            raise AssertionError("the request path called load")

        monkeypatch.setattr(database, "load", notThisWay)
        response = await client.get(base + "/get/user", cookies=cookies)
        assert (response.code, await response.text()) == (200, '"dora"')

        class Failing:
            def __init__(self, error: Exception) -> None:
                self.error = error

            def execute(self, *args: Any) -> Any:
                raise self.error

        inline = database._sqlite._inline
        busy = Failing(sqlite3.OperationalError("database is locked"))
        monkeypatch.setattr(database._sqlite, "_inline", busy)
        monkeypatch.setattr(database, "load", load)
        response = await client.get(base + "/get/user", cookies=cookies)
        assert (response.code, await response.text()) == (200, '"dora"')

        broken = Failing(sqlite3.DatabaseError("disk I/O error"))
        monkeypatch.setattr(database._sqlite, "_inline", broken)
        response = await client.get(base + "/get/user", cookies=cookies)
        assert response.code == 503
        await response.content()
        assert setCookies(response) == []
        monkeypatch.setattr(database._sqlite, "_inline", inline)
    finally:
        await sessions.close()


@pytest_twisted.ensureDeferred
async def test_theRequestPathReadsLMDBAtOnce(
    tmp_path: Any, listen: Any, monkeypatch: Any
) -> None:
    """
    A request reads its LMDB session through L{LMDBDatabase.loadAtOnce}, in
    the reactor thread, not through C{load} and its L{Deferred}; LMDB failing
    there is a 503, with no cookie.
    """
    database = openDatabase(f"lmdb:{tmp_path / 'env'}")
    sessions = Sessions(Config(cookie=COOKIE), database)
    try:
        base, client, cookies = await servedAndWritten(
            sessions, listen, "/set/user/dora"
        )

        def notThisWay(key: str) -> Any:
            raise AssertionError("the request path called load")

        monkeypatch.setattr(database, "load", notThisWay)
        response = await client.get(base + "/get/user", cookies=cookies)
        assert (response.code, await response.text()) == (200, '"dora"')

        def failing(data: bytes) -> Any:
            raise lmdb.Error("the disk went away")

        monkeypatch.setattr(txlmdb, "recordParts", failing)
        response = await client.get(base + "/get/user", cookies=cookies)
        assert response.code == 503
        await response.content()
        assert setCookies(response) == []
    finally:
        await sessions.close()
