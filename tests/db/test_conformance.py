"""
The conformance suite: every database passes it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from txsessions import DestroyReason
from txsessions._fields import changeParts
from txsessions.errors import CounterRangeError
from txsessions.interfaces import IDatabase, Lifetime, SessionChanges, StoredSession
from txsessions.records import SessionInfo

DATABASES = ["memory", "sqlite", "lmdb", "redis"]
CLOCKED = ["memory", "sqlite", "lmdb"]
"""
The databases whose expirations run on the clock the tests control; Redis
expires keys on its own time.
"""


def databaseURL(kind: str, path: Any, request: Any) -> str:
    if kind == "memory":
        return "memory:"
    if kind == "redis":
        server = request.getfixturevalue("redisServer")
        return f"{server.url}?prefix=t{uuid.uuid4().hex[:12]}:"
    return f"{kind}:{path / kind}"


def openDatabase(kind: str, clock: Any, path: Any, request: Any) -> Any:
    from txsessions.db import openDatabase

    return openDatabase(databaseURL(kind, path, request), clock)


@pytest.fixture(params=DATABASES)
def databaseKind(request: Any) -> str:
    """
    The kind of database; Redis's server is started here, in a synchronous
    fixture, so that a server missing skips the Redis parameter alone
    (skipping inside the asynchronous fixture errored every parameter).
    """
    if request.param == "redis":
        request.getfixturevalue("redisServer")
    return str(request.param)


@pytest_twisted.async_yield_fixture
async def database(
    databaseKind: str, request: Any, clock: Any, tmp_path: Any
) -> AsyncIterator[Any]:
    db = openDatabase(databaseKind, clock, tmp_path, request)
    db.kind = databaseKind
    yield db
    await db.close()


def clockedOnly(database: Any) -> None:
    if database.kind not in CLOCKED:
        pytest.skip("Redis expires keys on its own time: see tests/db/test_redis.py")


@pytest.fixture
def destroyed(database: Any) -> list[tuple[str, DestroyReason]]:
    events: list[tuple[str, DestroyReason]] = []
    database.listen(lambda key, reason: events.append((key, reason)))
    return events


async def create(
    db: Any, key: str, expiresAt: float | None = None, **values: str
) -> None:
    changes = SessionChanges(
        create=True, lifetime=Lifetime(0, expiresAt), updated=values
    )
    assert await db.save(key, changes) == {}


async def settle(db: Any) -> None:
    """
    Wait for the work a database started on its own (expirations) to end,
    and for the destroy events it published (Redis) to come back.
    """
    await db.count()
    if hasattr(db, "eventsDelivered"):
        await db.eventsDelivered()


def test_providesIDatabase(database: Any) -> None:
    assert verifyObject(IDatabase, database)


@pytest_twisted.ensureDeferred
async def test_unknownKeyLoadsAsNone(database: Any) -> None:
    assert await database.load("nope") is None


@pytest_twisted.ensureDeferred
async def test_createThenLoad(database: Any) -> None:
    await create(database, "k", None, a="1", b='"two"', c='"\\u2019 \U0001f600"')
    assert await database.load("k") == StoredSession(
        Lifetime(0, None), {"a": "1", "b": '"two"', "c": '"\\u2019 \U0001f600"'}
    )


@pytest_twisted.ensureDeferred
async def test_anyNameAndTextRoundTrip(database: Any) -> None:
    """
    Names and JSON text with quotes, backslashes, line breaks, NULs and
    characters outside the BMP come back as they went in, through every
    kind of change.
    """
    odd = 'q"b\\s\nl\r\x00z\u00e9\U0001f600'
    await create(database, "k", None, **{odd: '"x"', "gone": "1"})
    changes = SessionChanges(
        deleted=frozenset({"gone"}),
        updated={odd + "2": '"\\u0000 \U0001f600\n"'},
        increments={odd + "n": 2},
    )
    assert await database.save("k", changes) == {odd + "n": 2}
    stored = await database.load("k")
    assert stored is not None and stored.values == {
        odd: '"x"',
        odd + "2": '"\\u0000 \U0001f600\n"',
        odd + "n": "2",
    }


@pytest_twisted.ensureDeferred
async def test_loadReturnsACopy(database: Any) -> None:
    await create(database, "k", None, a="1")
    stored = await database.load("k")
    stored.values["a"] = "2"
    assert await database.load("k") == StoredSession(Lifetime(0, None), {"a": "1"})


@pytest_twisted.ensureDeferred
async def test_saveAppliesClearThenDeletesThenUpdates(database: Any) -> None:
    await create(database, "k", None, a="1", b="2", c="3")
    changes = SessionChanges(deleted=frozenset({"a"}), updated={"d": "4", "b": "5"})
    assert await database.save("k", changes) == {}
    assert await database.load("k") == StoredSession(
        Lifetime(0, None), {"b": "5", "c": "3", "d": "4"}
    )
    assert (
        await database.save("k", SessionChanges(clear=True, updated={"e": "6"})) == {}
    )
    assert await database.load("k") == StoredSession(Lifetime(0, None), {"e": "6"})


@pytest_twisted.ensureDeferred
async def test_saveNeverResurrects(database: Any) -> None:
    await create(database, "k", None, a="1")
    assert await database.destroy("k", DestroyReason.destroyed) is True
    changes = SessionChanges(updated={"a": "2"}, increments={"n": 1})
    assert await database.save("k", changes) is None
    assert await database.load("k") is None
    assert await database.count() == 0


@pytest_twisted.ensureDeferred
async def test_saveCanChangeTheLifetime(database: Any, clock: Any) -> None:
    await create(database, "k", 10, a="1")
    assert await database.save("k", SessionChanges(lifetime=Lifetime(0, 20))) == {}
    clock.advance(15)
    await settle(database)
    stored = await database.load("k")
    assert stored is not None and stored.lifetime == Lifetime(0, 20)


@pytest_twisted.ensureDeferred
async def test_expiredSessionIsNeverLoaded(
    database: Any, clock: Any, destroyed: list[Any]
) -> None:
    await create(database, "k", 10.5, a="1")
    clock.advance(10.4)
    assert await database.load("k") is not None
    clock.advance(0.1)
    assert await database.load("k") is None
    assert await database.save("k", SessionChanges(updated={"a": "2"})) is None
    clockedOnly(database)
    clock.advance(1)
    await settle(database)
    assert destroyed == [("k", DestroyReason.expired)]
    assert await database.count() == 0
    assert clock.getDelayedCalls() == []


async def loadInParts(db: Any, key: str) -> Any:
    """
    A session as the database's load in parts gives it (C{loadParts}, or
    C{loadAtOnce} answered at once); the test skipped for a database with
    neither.
    """
    if hasattr(db, "loadParts"):
        return await db.loadParts(key)
    if hasattr(db, "loadAtOnce"):
        return db.loadAtOnce(key)
    pytest.skip(f"{db.kind} loads in one form only")


@pytest_twisted.ensureDeferred
async def test_loadInPartsAgreesWithLoad(database: Any, clock: Any) -> None:
    """
    A database's load in parts gives C{load}'s session as its lifetime's
    times and a copy of its fields, and C{None} where C{load} does.
    """
    assert await loadInParts(database, "nope") is None
    await create(database, "k", 10.5, a="1", b='"two"')
    await create(database, "forever", None, c="3")
    parts = await loadInParts(database, "k")
    assert parts == (0, 10.5, {"a": "1", "b": '"two"'})
    created, expires, fields = parts
    assert StoredSession(Lifetime(created, expires), fields) == await database.load("k")
    fields["a"] = "2"
    assert (await loadInParts(database, "k"))[2]["a"] == "1"
    assert await loadInParts(database, "forever") == (0, None, {"c": "3"})
    clock.advance(10.5)
    assert await loadInParts(database, "k") is None
    assert await database.load("k") is None


async def saveInParts(db: Any, key: str, changes: SessionChanges) -> Any:
    """
    C{changes} saved through the database's save in parts (C{saveParts}, or
    C{saveAtOnce} answered at once), given the record's fields in order;
    the test skipped for a database with neither.
    """
    parts = changeParts(changes)
    if hasattr(db, "saveParts"):
        return await db.saveParts(key, *parts)
    if hasattr(db, "saveAtOnce"):
        return db.saveAtOnce(key, *parts)
    pytest.skip(f"{db.kind} saves in one form only")


@pytest_twisted.ensureDeferred
async def test_saveInPartsAgreesWithSave(database: Any, clock: Any) -> None:
    """
    The same changes saved through a database's save in parts and through
    C{save} answer alike and leave the same session: a creation, an update
    with a deletion, increments and a new lifetime, a clear, and a save to
    a session that is no more.
    """
    steps = [
        SessionChanges(
            create=True, lifetime=Lifetime(0, 10), updated={"a": "1", "b": "2"}
        ),
        SessionChanges(deleted=frozenset({"a"}), updated={"c": '"x\u00e9"'}),
        SessionChanges(lifetime=Lifetime(0, 20), increments={"n": 2, "b": 1}),
        SessionChanges(clear=True, updated={"d": "4"}),
    ]
    for changes in steps:
        inParts = await saveInParts(database, "p", changes)
        assert inParts == await database.save("s", changes)
        assert await database.load("p") == await database.load("s")
    stored = await database.load("p")
    assert stored == StoredSession(Lifetime(0, 20), {"d": "4"})
    clock.advance(20)
    late = SessionChanges(updated={"e": "5"})
    assert await saveInParts(database, "p", late) is None
    assert await database.save("s", late) is None


@pytest_twisted.ensureDeferred
async def test_incrementsAreAppliedLast(database: Any) -> None:
    await create(database, "k", None, n="5", s='"7"', f="1.5", b="true")
    changes = SessionChanges(
        updated={"n": "10"},
        increments={"n": 2, "missing": -3, "s": 1, "f": 1, "b": 1},
    )
    result = await database.save("k", changes)
    assert result == {"n": 12, "missing": -3, "s": 1, "f": 1, "b": 1}
    stored = await database.load("k")
    assert stored.values == {"n": "12", "missing": "-3", "s": "1", "f": "1", "b": "1"}


@pytest_twisted.ensureDeferred
async def test_largeCountersStayExact(database: Any) -> None:
    """
    Counters are exact up to 64 bits, far past a double's 53 (and Lua's
    printing of one, which gives C{1e+14} for 10 ** 14).
    """
    await create(database, "k", None, a=str(10**14 - 1), b=str(2**62))
    changes = SessionChanges(increments={"a": 2, "b": 3})
    assert await database.save("k", changes) == {"a": 10**14 + 1, "b": 2**62 + 3}
    stored = await database.load("k")
    assert stored.values == {"a": str(10**14 + 1), "b": str(2**62 + 3)}


@pytest.mark.parametrize(
    ("counter", "delta"),
    [
        (None, 2**64),
        (None, -(2**63) - 1),
        (str(2**63 - 1), 1),
        (str(-(2**63)), -1),
        (str(2**63 - 1), 2**63 - 1),
        ("9" * 20, -1),
    ],
)
@pytest.mark.parametrize("new", [True, False])
@pytest_twisted.ensureDeferred
async def test_aCounterPast64BitsSavesNothing(
    database: Any, new: bool, counter: str | None, delta: int
) -> None:
    """
    Every database refuses an increment whose counter would leave the
    64-bit integers (a stored counter or a delta beyond them, or a sum past
    them), as Redis's C{HINCRBY} does, with a L{DatabaseError}, and saves
    nothing of that save.  Memory, SQLite and LMDB had counted on past
    them: a counter's value depended on the database.
    """
    before = {"user": '"alice"', "gone": "1"}
    if counter is not None:
        before["n"] = counter
    if not new:
        await create(database, "k", None, **before)
    changes = SessionChanges(
        create=new,
        lifetime=Lifetime(0, None),
        updated={"user": '"mallory"', **({"n": counter} if counter else {})},
        deleted=frozenset({"gone"}),
        increments={"n": delta},
    )
    with pytest.raises(CounterRangeError, match="64-bit"):
        await database.save("k", changes)
    stored = await database.load("k")
    if new:
        assert stored is None
    else:
        assert stored.values == before


@pytest_twisted.ensureDeferred
async def test_incrementOnCreate(database: Any) -> None:
    changes = SessionChanges(
        create=True, lifetime=Lifetime(0, None), increments={"n": 1}
    )
    assert await database.save("k", changes) == {"n": 1}


@pytest_twisted.ensureDeferred
async def test_concurrentIncrementsNeverLoseAnUpdate(database: Any) -> None:
    from twisted.internet.defer import gatherResults

    await create(database, "k", None)
    pending = [
        database.save("k", SessionChanges(increments={"n": 1})) for _ in range(100)
    ]
    results = await gatherResults(pending)
    assert sorted(r["n"] for r in results) == list(range(1, 101))
    stored = await database.load("k")
    assert stored.values["n"] == "100"


@pytest_twisted.ensureDeferred
async def test_concurrentWritesOfDifferentKeysAllLand(database: Any) -> None:
    from twisted.internet.defer import gatherResults

    await create(database, "k", None)
    await gatherResults(
        [
            database.save("k", SessionChanges(updated={f"k{i}": str(i)}))
            for i in range(200)
        ]
    )
    stored = await database.load("k")
    assert stored.values == {f"k{i}": str(i) for i in range(200)}


@pytest_twisted.ensureDeferred
async def test_destroyTellsListenersOnce(database: Any, destroyed: list[Any]) -> None:
    await create(database, "k", 10)
    assert await database.destroy("k", DestroyReason.destroyed) is True
    assert await database.destroy("k", DestroyReason.destroyed) is False
    await settle(database)
    assert destroyed == [("k", DestroyReason.destroyed)]


@pytest_twisted.ensureDeferred
async def test_destroyedSessionDoesNotExpireLater(
    database: Any, clock: Any, destroyed: list[Any]
) -> None:
    await create(database, "k", 10)
    await database.destroy("k", DestroyReason.destroyByID)
    assert clock.getDelayedCalls() == []
    clock.advance(20)
    await settle(database)
    assert destroyed == [("k", DestroyReason.destroyByID)]


@pytest_twisted.ensureDeferred
async def test_destroyAllAndCount(
    database: Any, destroyed: list[Any], clock: Any
) -> None:
    for i in range(5):
        await create(database, f"k{i}", 10)
    assert await database.count() == 5
    assert await database.destroyAll(DestroyReason.destroyAll) == 5
    assert await database.count() == 0
    await settle(database)
    assert sorted(destroyed) == [(f"k{i}", DestroyReason.destroyAll) for i in range(5)]
    assert clock.getDelayedCalls() == []


async def createShortLongForever(database: Any) -> None:
    """
    Store sessions ending at 5 and 50, and one with no lifetime.
    """
    await create(database, "short", 5)
    await create(database, "long", 50)
    await create(database, "forever", None)


@pytest_twisted.ensureDeferred
async def test_countSkipsExpiredSessions(database: Any, clock: Any) -> None:
    clockedOnly(database)
    await createShortLongForever(database)
    clock.rightNow = 6.0  # no expiration has run yet
    assert await database.count() == 2


@pytest_twisted.ensureDeferred
async def test_listenReturnsAnUnsubscriber(database: Any) -> None:
    events: list[Any] = []
    stop = database.listen(lambda *a: events.append(a))
    await create(database, "a")
    await database.destroy("a", DestroyReason.destroyed)
    await settle(database)
    stop()
    stop()
    await create(database, "b")
    await database.destroy("b", DestroyReason.destroyed)
    await settle(database)
    assert events == [("a", DestroyReason.destroyed)]


@pytest_twisted.ensureDeferred
async def test_aFailingListenerDoesNotStopTheOthers(database: Any) -> None:
    events: list[Any] = []

    def bad(key: str, reason: DestroyReason) -> None:
        raise RuntimeError("listener bug")

    database.listen(bad)
    database.listen(lambda *a: events.append(a))
    await create(database, "a")
    assert await database.destroy("a", DestroyReason.destroyed) is True
    await settle(database)
    assert events == [("a", DestroyReason.destroyed)]


@pytest_twisted.ensureDeferred
async def test_closeStopsExpirations(clock: Any, tmp_path: Any, request: Any) -> None:
    for kind in DATABASES:
        db = openDatabase(kind, clock, tmp_path, request)
        await create(db, "k", 10)
        await db.close()
        assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_renameMovesTheSessionAndItsExpiry(
    database: Any, clock: Any, destroyed: list[Any]
) -> None:
    await create(database, "old", 10, a="1")
    assert await database.rename("old", "new") is True
    await settle(database)
    assert destroyed == [("old", DestroyReason.regenerated)]
    assert await database.load("old") is None
    assert await database.load("new") == StoredSession(Lifetime(0, 10), {"a": "1"})
    assert await database.save("old", SessionChanges(updated={"a": "2"})) is None
    clockedOnly(database)
    clock.advance(10)
    await settle(database)
    assert destroyed[1:] == [("new", DestroyReason.expired)]
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_renameOfAMissingOrExpiredSession(database: Any, clock: Any) -> None:
    assert await database.rename("nope", "new") is False
    await create(database, "old", 5)
    clock.rightNow = 5.0
    assert await database.rename("old", "new") is False
    assert await database.load("new") is None


@pytest.mark.parametrize("kind", CLOCKED)
@pytest_twisted.ensureDeferred
async def test_aFullDatabaseRefusesNewSessionsOnly(
    kind: str, clock: Any, tmp_path: Any
) -> None:
    from txsessions.db import openDatabase as openURL
    from txsessions.errors import SessionLimitError

    url = "memory:" if kind == "memory" else f"{kind}:{tmp_path / kind}"
    db = openURL(url, clock, maxSessions=2)
    try:
        await create(db, "a")
        await create(db, "b")
        with pytest.raises(SessionLimitError):
            await create(db, "c")
        assert await db.save("a", SessionChanges(updated={"x": "1"})) == {}
        await db.destroy("b", DestroyReason.destroyed)
        await create(db, "c")
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_sessionsDescribesEachLiveSession(database: Any) -> None:
    await create(database, "k1", 10, a="1", b='"tw\u00f6"')
    await create(database, "k2", None)
    assert await database.sessions() in (
        [
            SessionInfo("k1", Lifetime(0, 10), 1 + 1 + 1 + 6),
            SessionInfo("k2", Lifetime(0, None), 0),
        ],
        [
            SessionInfo("k2", Lifetime(0, None), 0),
            SessionInfo("k1", Lifetime(0, 10), 1 + 1 + 1 + 6),
        ],
    )


@pytest_twisted.ensureDeferred
async def test_sessionsSizeFollowsTheValues(database: Any) -> None:
    await create(database, "k", None, a="1")
    await database.save("k", SessionChanges(updated={"name": '"\u00e9"'}))
    assert [info.size for info in await database.sessions()] == [2 + 4 + 4]
    await database.save("k", SessionChanges(clear=True))
    assert [info.size for info in await database.sessions()] == [0]


@pytest_twisted.ensureDeferred
async def test_sessionsUnderAPrefix(database: Any) -> None:
    for key in ["abc1", "abc2", "abd", "x", "a*b", "a?b", "a[b]", "a\\b", "aab"]:
        await create(database, key)
    found = await database.sessions("abc")
    assert sorted(info.key for info in found) == ["abc1", "abc2"]
    assert [info.key for info in await database.sessions("a*")] == ["a*b"]
    assert [info.key for info in await database.sessions("a?")] == ["a?b"]
    assert [info.key for info in await database.sessions("a[")] == ["a[b]"]
    assert [info.key for info in await database.sessions("a\\")] == ["a\\b"]
    assert await database.sessions("zz") == []
    assert len(await database.sessions()) == 9


@pytest_twisted.ensureDeferred
async def test_sessionsSkipsExpiredSessions(database: Any, clock: Any) -> None:
    await create(database, "short", 5)
    await create(database, "long", 50)
    clock.rightNow = 6.0  # no expiration has run yet
    assert [info.key for info in await database.sessions()] == ["long"]


@pytest_twisted.ensureDeferred
async def test_sessionsOfAnEmptyDatabase(database: Any) -> None:
    assert await database.sessions() == []


@pytest_twisted.ensureDeferred
async def test_purgeExpiredRemovesEndedSessionsOnly(
    database: Any, clock: Any, destroyed: list[Any]
) -> None:
    clockedOnly(database)
    await createShortLongForever(database)
    clock.rightNow = 6.0  # no expiration has run yet
    assert await database.purgeExpired() == 1
    assert destroyed == [("short", DestroyReason.expired)]
    assert await database.load("long") is not None
    assert await database.count() == 2
    assert await database.purgeExpired() == 0
    clock.advance(50)
    await settle(database)
    assert destroyed == [
        ("short", DestroyReason.expired),
        ("long", DestroyReason.expired),
    ]
    assert clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_redisPurgesNothingItself(database: Any) -> None:
    if database.kind != "redis":
        pytest.skip("Redis only")
    await create(database, "k", 10)
    assert await database.purgeExpired() == 0
    assert await database.count() == 1


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
@pytest_twisted.ensureDeferred
async def test_purgeExpiredRemovesSessionsThatEndedWhileClosed(
    kind: str, clock: Any, tmp_path: Any, request: Any
) -> None:
    first = openDatabase(kind, clock, tmp_path, request)
    await create(first, "gone", 5)
    await create(first, "kept", None)
    await first.close()
    clock.rightNow = 100.0
    second = openDatabase(kind, clock, tmp_path, request)
    try:
        events: list[Any] = []
        second.listen(lambda *a: events.append(a))
        assert await second.purgeExpired() == 1
        assert events == [("gone", DestroyReason.expired)]
        clock.advance(1)  # the expiration scheduled at opening finds nothing
        await settle(second)
        assert events == [("gone", DestroyReason.expired)]
        assert [info.key for info in await second.sessions()] == ["kept"]
    finally:
        await second.close()


@pytest.mark.parametrize("kind", CLOCKED)
@pytest_twisted.ensureDeferred
async def test_theCapCountsLiveSessionsOnly(
    kind: str, clock: Any, tmp_path: Any
) -> None:
    """
    C{maxSessions} and C{count()} count the same thing in every database:
    the live sessions.  One expired, even if not yet purged, takes no place
    (before, SQLite and LMDB counted every stored record and memory every
    one whose expiration had not run); a session created again under its own
    key takes none either (before, memory refused it).
    """
    from txsessions.db import openDatabase as openURL
    from txsessions.errors import SessionLimitError

    url = "memory:" if kind == "memory" else f"{kind}:{tmp_path / kind}"
    db = openURL(url, clock, maxSessions=2)
    try:
        await create(db, "short", 5)
        await create(db, "long", 50)
        with pytest.raises(SessionLimitError):
            await create(db, "refused")
        await create(db, "long", 50)
        clock.rightNow = 6.0  # no expiration has run yet
        assert await db.count() == 1
        await create(db, "new", 50)
        assert await db.count() == 2
        with pytest.raises(SessionLimitError):
            await create(db, "refused")
    finally:
        await db.close()
