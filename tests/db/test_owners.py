"""
The conformance suite's part for owners (issue 19): every database keeps an
owner index with its sessions, in the same transaction or script as the
save, rename, destroy and expiry, and L{IDatabase.sessionsOf} reads it.
"""

# The fixtures imported from the other suites are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import sqlite3
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail

from tests.redis import RedisServer
from txsessions import DatabaseError, DestroyReason, MemoryDatabase, Sessions
from txsessions.db.redis import RedisDatabase
from txsessions.interfaces import Lifetime, SessionChanges, SessionInfo
from txsessions.records import OWNER_FIELD, OwnerMark

from .test_conformance import (  # noqa: F401 (fixtures)
    clockedOnly,
    database,
    databaseKind,
    destroyed,
    openDatabase,
    settle,
)
from .test_redis import (  # noqa: F401 (fixtures)
    commandCounts,
    prefixed,
    redisDB,
    roundTripsSince,
    twoProcessesOn,
    until,
)


def mark(owner: str, agent: str = "Firefox", seen: float = 5.0) -> str:
    return OwnerMark(owner, agent, seen).encode()


async def own(
    db: Any, key: str, owner: str | None, expiresAt: float | None = None
) -> None:
    """
    Create session C{key} owned by C{owner} (C{None}: by nobody).
    """
    updated = {"a": "1"} if owner is None else {"a": "1", OWNER_FIELD: mark(owner)}
    changes = SessionChanges(
        create=True, lifetime=Lifetime(0, expiresAt), updated=updated
    )
    assert await db.save(key, changes) == {}


async def keysOf(db: Any, owner: str) -> list[str]:
    return sorted(info.key for info in await db.sessionsOf(owner))


@pytest_twisted.ensureDeferred
async def test_sessionsOfListsAnOwnersSessionsOnly(database: Any) -> None:
    await own(database, "a1", "alice")
    await own(database, "a2", "alice", 100)
    await own(database, "b1", "bob")
    await own(database, "n1", None)
    assert await keysOf(database, "alice") == ["a1", "a2"]
    assert await keysOf(database, "bob") == ["b1"]
    assert await database.sessionsOf("carol") == []


@pytest_twisted.ensureDeferred
async def test_sessionsOfTellsTimesAgentAndOwnerNeverValues(database: Any) -> None:
    await own(database, "a1", "alice", 100)
    [info] = await database.sessionsOf("alice")
    assert info == SessionInfo(
        "a1",
        Lifetime(0, 100),
        SessionInfo.sizeOf({"a": "1", OWNER_FIELD: mark("alice")}),
        owner="alice",
        lastSeen=5.0,
        userAgent="Firefox",
    )


@pytest_twisted.ensureDeferred
async def test_aNewOwnerMovesTheSessionInTheIndex(database: Any) -> None:
    await own(database, "k", "alice")
    await database.save("k", SessionChanges(updated={OWNER_FIELD: mark("bob")}))
    assert await keysOf(database, "alice") == []
    assert await keysOf(database, "bob") == ["k"]
    await database.save("k", SessionChanges(deleted=frozenset({OWNER_FIELD})))
    assert await keysOf(database, "bob") == []


@pytest_twisted.ensureDeferred
async def test_aLastSeenWriteKeepsTheSessionIndexed(database: Any) -> None:
    await own(database, "k", "alice")
    later = mark("alice", seen=400.0)
    await database.save("k", SessionChanges(updated={OWNER_FIELD: later}))
    [info] = await database.sessionsOf("alice")
    assert (info.key, info.lastSeen) == ("k", 400.0)


@pytest_twisted.ensureDeferred
async def test_clearingEveryFieldDropsTheOwner(database: Any) -> None:
    await own(database, "k", "alice")
    await database.save("k", SessionChanges(clear=True, updated={"b": "2"}))
    assert await keysOf(database, "alice") == []


@pytest_twisted.ensureDeferred
async def test_recreatingAKeyReplacesItsOwner(database: Any) -> None:
    await own(database, "k", "alice")
    await own(database, "k", "bob")
    assert await keysOf(database, "alice") == []
    assert await keysOf(database, "bob") == ["k"]


@pytest_twisted.ensureDeferred
async def test_theOwnerSurvivesRegeneration(database: Any) -> None:
    await own(database, "old", "alice")
    assert await database.rename("old", "new") is True
    assert await keysOf(database, "alice") == ["new"]


@pytest_twisted.ensureDeferred
async def test_theOwnerGoesWithADestroyedSession(database: Any) -> None:
    await own(database, "a1", "alice")
    await own(database, "a2", "alice")
    assert await database.destroy("a1", DestroyReason.owner) is True
    assert await keysOf(database, "alice") == ["a2"]
    await database.destroyAll(DestroyReason.destroyAll)
    assert await keysOf(database, "alice") == []
    await own(database, "a3", "alice")
    assert await keysOf(database, "alice") == ["a3"]


@pytest_twisted.ensureDeferred
async def test_anExpiredSessionIsNeverListed(database: Any, clock: Any) -> None:
    """
    Even before its expiration has run, an expired session is not listed.
    """
    await own(database, "short", "alice", 10)
    await own(database, "long", "alice", 100)
    clock.advance(10)
    assert await keysOf(database, "alice") == ["long"]


@pytest_twisted.ensureDeferred
async def test_theOwnerGoesWithAnExpiredSession(
    database: Any, clock: Any, destroyed: list[Any]
) -> None:
    clockedOnly(database)
    await own(database, "short", "alice", 10)
    await own(database, "long", "alice", 100)
    clock.advance(11)
    await settle(database)
    assert destroyed == [("short", DestroyReason.expired)]
    assert await keysOf(database, "alice") == ["long"]
    # Recreated under the same key without an owner, it is not listed.
    await own(database, "short", None, 200)
    assert await keysOf(database, "alice") == ["long"]


@pytest_twisted.ensureDeferred
async def test_purgedSessionsLeaveTheIndex(database: Any, clock: Any) -> None:
    clockedOnly(database)
    await own(database, "short", "alice", 10)
    clock.advance(10)
    await database.purgeExpired()
    await own(database, "short", None, 200)
    assert await keysOf(database, "alice") == []


@pytest_twisted.ensureDeferred
async def test_theIndexPersists(
    databaseKind: str, clock: Any, tmp_path: Any, request: Any
) -> None:
    if databaseKind not in ("sqlite", "lmdb"):
        return
    db = openDatabase(databaseKind, clock, tmp_path, request)
    await own(db, "k", "alice")
    await db.close()
    db = openDatabase(databaseKind, clock, tmp_path, request)
    try:
        assert await keysOf(db, "alice") == ["k"]
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_anSQLiteFileFromBeforeOwnersGainsTheIndex(
    clock: Any, tmp_path: Any, request: Any
) -> None:
    path = tmp_path / "sqlite"
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "CREATE TABLE txsessions (key TEXT PRIMARY KEY, created REAL NOT NULL, "
            "expires REAL, fields TEXT NOT NULL)"
        )
        connection.execute("INSERT INTO txsessions VALUES ('old', 0, NULL, '{}')")
    connection.close()
    db = openDatabase("sqlite", clock, tmp_path, request)
    try:
        assert await db.load("old") is not None
        await own(db, "k", "alice")
        assert await keysOf(db, "alice") == ["k"]
    finally:
        await db.close()


# Redis: the index is a set per owner, kept by the scripts.


@pytest_twisted.ensureDeferred
async def test_redisLookupPrunesSessionsGoneByTTL(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    """
    A session Redis expired by TTL leaves its key in the owner's set, which
    lives as long as the owner's longest session; the lookup removes it, and
    never reports it.
    """
    heard: list[Any] = []
    redisDB.listen(lambda *a: heard.append(a))
    await redisDB.eventsDelivered()
    now = reactor.seconds()
    for key, expiresAt in (("short", now + 0.3), ("long", now + 100)):
        changes = SessionChanges(
            create=True,
            lifetime=Lifetime(now, expiresAt),
            updated={OWNER_FIELD: mark("alice")},
        )
        await redisDB.save(key, changes)
    index = redisDB._owners + "alice"
    assert await redisDB._redis.call("scard", index) == 2
    await until(heard, 1)
    assert heard == [("short", DestroyReason.expired)]
    assert await keysOf(redisDB, "alice") == ["long"]
    assert await redisDB._redis.call("scard", index) == 1
    assert (
        98_000 < await redisDB._redis.call("execute_command", "PTTL", index) <= 100_000
    )


@pytest_twisted.ensureDeferred
async def test_redisLookupIsOneRoundTripAndNoScan(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    now = reactor.seconds()
    for i in range(60):
        owner = "alice" if i % 6 == 0 else f"user{i}"
        changes = SessionChanges(
            create=True,
            lifetime=Lifetime(now, now + 100),
            updated={OWNER_FIELD: mark(owner)},
        )
        await redisDB.save(f"k{i}", changes)
    await redisDB.sessionsOf("alice")  # the script's first run: EVAL
    before = commandCounts(redisServer)
    assert len(await redisDB.sessionsOf("alice")) == 10
    after = commandCounts(redisServer)
    assert roundTripsSince(before, after) == {"script": 1, "hgetall": 10}
    assert after.get("scan", 0) == before.get("scan", 0)


@pytest_twisted.ensureDeferred
async def test_destroyOwnerIsHeardInEveryProcess(redisServer: RedisServer) -> None:
    async with twoProcessesOn(prefixed(redisServer)) as (first, second, heard):
        now = reactor.seconds()
        for key, owner in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
            changes = SessionChanges(
                create=True,
                lifetime=Lifetime(now, now + 100),
                updated={OWNER_FIELD: mark(owner)},
            )
            await first.save(key, changes)
        sessions = Sessions(database=second)
        assert await sessions.destroyOwner("alice") == 2
        await first.eventsDelivered()
        await second.eventsDelivered()
        for name in heard:
            assert sorted(heard[name]) == [
                ("a1", DestroyReason.owner),
                ("a2", DestroyReason.owner),
            ]
        assert await keysOf(first, "alice") == []
        assert await keysOf(first, "bob") == ["b1"]


@pytest_twisted.ensureDeferred
async def test_destroyOwnerEndsManySessionsTogether(database: Any) -> None:
    """
    C{Sessions.destroyOwner} ends each of an owner's 70 sessions, and no
    other's, with L{DestroyReason.owner}; the embedded databases commit
    them in a few transactions (7 here), not one each.  (Before, the destroys went
    one after the other: 70 commits, 70 fsyncs.)
    """
    for i in range(70):
        await own(database, f"a{i:02}", "alice")
    await own(database, "b", "bob")
    heard: list[tuple[str, DestroyReason]] = []
    database.listen(lambda key, reason: heard.append((key, reason)))
    writer = getattr(database, "writer", None)
    commits = 0 if writer is None else writer.commits
    sessions = Sessions(database=database)
    assert await sessions.destroyOwner("alice") == 70
    assert await keysOf(database, "alice") == []
    assert await keysOf(database, "bob") == ["b"]
    await settle(database)
    assert sorted(heard) == [(f"a{i:02}", DestroyReason.owner) for i in range(70)]
    if writer is not None:
        assert writer.commits - commits <= 16


@pytest_twisted.ensureDeferred
async def test_destroyOwnerStopsAtAFailedGroup(monkeypatch: Any) -> None:
    """
    When destroys fail, C{destroyOwner} fails with the first one's error once
    the others under way with it have finished, and begins no more: of 70
    sessions, the first 64 are tried, and the failure is counted once.
    (Counted once for each failed destroy, 64, before the group went
    through one call.)
    """
    database = MemoryDatabase()
    for i in range(70):
        await own(database, f"a{i:02}", "alice")
    tried: list[str] = []

    def failing(key: str, reason: DestroyReason) -> Deferred[bool]:
        tried.append(key)
        return fail(RuntimeError("the disk went away"))

    monkeypatch.setattr(database, "destroy", failing)
    sessions = Sessions(database=database)
    with pytest.raises(DatabaseError, match="the disk went away"):
        await sessions.destroyOwner("alice")
    assert len(tried) == 64
    assert sessions.metrics.storeErrors == 1
    assert len(await keysOf(database, "alice")) == 70


class _OlderDatabase:
    """
    A database written before L{IDatabase} had C{sessionsOf}: the memory
    database, but for that.
    """

    def __init__(self) -> None:
        self._database = MemoryDatabase()

    def __getattr__(self, name: str) -> Any:
        if name == "sessionsOf":
            raise AttributeError(name)
        return getattr(self._database, name)


@pytest_twisted.ensureDeferred
async def test_aDatabaseWithoutAnOwnerIndexSaysSo() -> None:
    """
    Listing or destroying a user's sessions on a database that keeps no
    owner index fails with a C{NotImplementedError} that says so, not an
    C{AttributeError} (raised at once, for C{sessionsOf}, before the fix).
    """
    sessions = Sessions(database=cast(Any, _OlderDatabase()))
    listing = sessions.sessionsOf("alice")
    with pytest.raises(NotImplementedError, match="keeps no owner index"):
        await listing
    with pytest.raises(NotImplementedError, match="keeps no owner index"):
        await sessions.destroyOwner("alice")
