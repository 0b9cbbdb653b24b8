"""
The conformance suite's part for owners (issue 19): every database keeps an
owner index with its sessions, in the same transaction or script as the
save, rename, destroy and expiry, and L{IDatabase.sessionsOf} reads it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest_twisted

from txsessions import DestroyReason
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
