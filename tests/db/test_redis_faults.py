"""
The Redis database when Redis, or what it answers, goes wrong: a set-up
refused while reconnecting, an increment Redis cannot hold, a reply that is
not what the script sends, and a restarted server that forgot its
configuration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import attrs
import pytest
import pytest_twisted
import txredisapi
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher

from tests.apps import servedAndWritten
from tests.db.test_redis import _tick, prefixed, reconnected, until
from tests.redis import RedisServer
from tests.support import COOKIE
from txsessions import Config, DatabaseError, DestroyReason, Sessions
from txsessions.db.redis import RedisDatabase
from txsessions.db.redis._connection import bulk
from txsessions.interfaces import Lifetime, SessionChanges


@pytest.fixture
def ownRedis(tmp_path: Any) -> Iterator[RedisServer]:
    """
    A Redis server of the test's own, which it may reconfigure or restart.
    """
    server = RedisServer.start(tmp_path)
    yield server
    server.stop()


@pytest_twisted.async_yield_fixture
async def admin(ownRedis: RedisServer) -> AsyncIterator[Any]:
    """
    A connection to C{ownRedis} of the test's own, made first: it stays
    when Redis takes no more clients.
    """
    connection = await txredisapi.Connection(
        "127.0.0.1", ownRedis.port, reconnect=False
    )
    yield connection
    await connection.disconnect()


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """
    The log events emitted during the test.
    """
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def quick(db: RedisDatabase) -> None:
    """
    Make C{db}'s connections retry within 50 ms rather than seconds.
    """
    for factory in (db._redis.factory, db._subscriber.factory):
        factory.initialDelay, factory.maxDelay = 0.01, 0.05


async def waitUntil(condition: Callable[[], object], what: str) -> None:
    """
    Return once C{condition()} is true, checked every 10 ms; fail after
    about 10 s, saying C{what} never happened.
    """
    for _ in range(1000):
        if condition():
            return
        await _tick()
    raise AssertionError(f"{what} never happened")


async def full(admin: Any, *kill: str) -> None:
    """
    Make Redis take no more clients, and drop the other connections of
    each type in C{kill} (C{normal}, C{pubsub}), so that they reconnect
    into a full Redis.
    """
    await admin.execute_command("CONFIG", "SET", "maxclients", "1")
    for kind in kill:
        await admin.execute_command("CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes")


async def refusedSetUp(db: RedisDatabase) -> None:
    """
    Return once C{db}'s command connections have been refused their set-up.
    """
    await waitUntil(lambda: "set-up" in (db._redis.down or ""), "a refused set-up")


@pytest_twisted.ensureDeferred
async def test_aSetUpRefusedWhileReconnectingIsRetried(
    ownRedis: RedisServer, admin: Any, logged: list[dict[str, Any]]
) -> None:
    """
    Redis refuses the set-up (C{SELECT}) of the pool's new connection, here
    because it takes no more clients: calls fail at once saying why, with
    one warning, and the pool keeps trying, so that once Redis has room the
    database works again without a restart (txredisapi stopped for good at
    the first refusal).
    """
    db = RedisDatabase(ownRedis.url, Clock())
    quick(db)
    try:
        changes = SessionChanges(create=True, lifetime=Lifetime(0), updated={"a": "1"})
        await db.save("k", changes)
        await full(admin, "normal")
        await refusedSetUp(db)
        with pytest.raises(DatabaseError, match="max number of clients"):
            await db.load("k")
        await admin.execute_command("CONFIG", "SET", "maxclients", "10000")
        stored = await reconnected(db, "k")
        assert stored is not None and stored.values == {"a": "1"}
    finally:
        await db.close()
    warnings = [formatEvent(e) for e in logged if e["log_level"] >= LogLevel.warn]
    assert len(warnings) == 1 and "max number of clients" in warnings[0]


@pytest_twisted.ensureDeferred
async def test_aSubscriberSetUpRefusedWhileReconnectingIsRetried(
    ownRedis: RedisServer, admin: Any, logged: list[dict[str, Any]]
) -> None:
    """
    With a password, the subscriber's new connection has a set-up too
    (C{AUTH}): refused, it keeps trying, and subscribes again once Redis
    has room; the password is in no log line nor in why calls fail.
    """
    await admin.execute_command("CONFIG", "SET", "requirepass", "s3cret")
    await admin.execute_command("AUTH", "s3cret")
    db = RedisDatabase(f"redis://:s3cret@127.0.0.1:{ownRedis.port}/0", Clock())
    quick(db)
    refusals: list[str] = []
    subscriber = db._subscriber.factory
    refused = subscriber.connectionError

    def counted(why: str) -> None:
        refusals.append(why)
        refused(why)

    subscriber.connectionError = counted
    try:
        await db.eventsDelivered()
        await full(admin, "normal", "pubsub")
        await refusedSetUp(db)
        await waitUntil(lambda: refusals, "a refused subscriber")
        assert "s3cret" not in str(db._redis.down)
        await admin.execute_command("CONFIG", "SET", "maxclients", "10000")
        assert await reconnected(db, "k") is None
        await db.eventsDelivered().addTimeout(10, reactor)
    finally:
        await db.close()
    assert all("s3cret" not in str(formatEvent(e)) for e in logged)


@pytest_twisted.async_yield_fixture
async def redisDB(redisServer: RedisServer) -> AsyncIterator[RedisDatabase]:
    """
    A database on the shared server, under a prefix of its own.
    """
    db = RedisDatabase(prefixed(redisServer))
    yield db
    await db.close()


INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


@pytest.mark.parametrize(
    ("counter", "delta"),
    [
        (None, 2**64),
        (None, INT64_MIN - 1),
        (str(INT64_MAX), 1),
        (str(INT64_MIN), -1),
        (str(INT64_MAX), INT64_MAX),
        ("9" * 20, 1),
        ("1", True),
    ],
)
@pytest.mark.parametrize("create", [True, False])
@pytest_twisted.ensureDeferred
async def test_anIncrementRedisCannotHoldSavesNothing(
    redisDB: RedisDatabase,
    redisServer: RedisServer,
    create: bool,
    counter: str | None,
    delta: int,
) -> None:
    """
    A save whose increment C{HINCRBY} would refuse (a delta or a stored
    counter beyond the 64-bit integers, a sum that overflows them, a delta
    that is no integer's digits) fails with a L{DatabaseError} and changes
    nothing: not the changes before it in the same save, and a new
    session's key is not left behind without a TTL (the script wrote, then
    failed half way).
    """
    now = reactor.seconds()
    key = f"k{create}"
    redisKey = redisDB._prefix + key
    before = {"user": '"alice"', "gone": "1"}
    if counter is not None:
        before["n"] = counter
    changes = SessionChanges(create=True, lifetime=Lifetime(now, now + 100))
    if not create:
        await redisDB.save(key, attrs.evolve(changes, updated=before))
    changes = attrs.evolve(
        changes,
        create=create,
        updated={"user": '"mallory"', **({"n": counter} if counter else {})},
        deleted=frozenset({"gone"}),
        increments={"n": delta},
    )
    with pytest.raises(DatabaseError, match="64-bit"):
        await redisDB.save(key, changes)
    if create:
        assert redisServer.cli("EXISTS", redisKey).strip() == "0"
    else:
        stored = await redisDB.load(key)
        assert stored is not None and stored.values == before
        assert 90 < int(redisServer.cli("TTL", redisKey)) <= 100


@pytest.mark.parametrize(
    ("counter", "delta", "total"),
    [
        (str(INT64_MAX - 1), 1, INT64_MAX),
        (str(INT64_MIN + 1), -1, INT64_MIN),
        (None, INT64_MIN, INT64_MIN),
        (str(INT64_MAX), INT64_MIN, -1),
        ("123456789012", 987654321098, 1111111110110),
        ("-0", 5, 5),
        ("007", 5, 5),
        ('"x"', 5, 5),
    ],
)
@pytest_twisted.ensureDeferred
async def test_anIncrementRedisCanHoldLands(
    redisDB: RedisDatabase, counter: str | None, delta: int, total: int
) -> None:
    """
    Increments up to the edges of the 64-bit integers land; a stored value
    that JSON reads as no integer, or as 0 (C{-0}), counts as 0, as in every
    database.
    """
    now = reactor.seconds()
    updated = {} if counter is None else {"n": counter}
    changes = SessionChanges(
        create=True, lifetime=Lifetime(now, now + 100), updated=updated
    )
    await redisDB.save("k", changes)
    assert await redisDB.save("k", SessionChanges(increments={"n": delta})) == {
        "n": total
    }


@pytest_twisted.ensureDeferred
async def test_anIncrementRedisCannotHoldSavesNothingWhenTheScriptIsSentWhole(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    """
    The script sent whole (Redis had forgotten it: C{NOSCRIPT}) refuses an
    increment Redis cannot hold with the same L{DatabaseError}.
    """
    now = reactor.seconds()
    changes = SessionChanges(
        create=True, lifetime=Lifetime(now, now + 100), increments={"n": 2**64}
    )
    redisServer.cli("SCRIPT", "FLUSH")
    with pytest.raises(DatabaseError, match="64-bit"):
        await redisDB.save("k", changes)
    assert redisServer.cli("EXISTS", redisDB._prefix + "k").strip() == "0"


async def answeringSavesWith(db: RedisDatabase, script: str) -> None:
    """
    Make C{db}'s saves run C{script} in Redis rather than the C{SAVE}
    script: what a broken or impostor Redis would answer.
    """
    sha = await db._redis.execute("SCRIPT", "LOAD", script)
    db._saveHead = b"*6\r\n" + bulk("EVALSHA") + bulk(sha) + bulk(1)
    db._saveSHA = sha


@pytest.mark.parametrize(
    ("script", "increments"),
    [
        ("return 5", {"n": 1}),
        ("return 1", {"n": 1}),
        ("return 0", {"n": 1}),
        ("return 0", {}),
        ("return 2", {}),
        ("return 'n'", {"n": 1}),
        ("return {}", {"n": 1}),
        ("return {}", {}),
        ("return {'n', '1'}", {}),
        ("return {'other', '1'}", {"n": 1}),
        ("return {'n'}", {"n": 1}),
        ("return {'n', '1', 'm'}", {"n": 1, "m": 1}),
        ("return {'m', '1', 'n', '1'}", {"n": 1, "m": 1}),
        ("return {'n', '1', 'n', '2'}", {"n": 1}),
        ("return {'n', 'notint'}", {"n": 1}),
        ("return {'n', ' 1'}", {"n": 1}),
        ("return {'n', '1_0'}", {"n": 1}),
        ("return {'n', '99999999999999999999999'}", {"n": 1}),
        ("return {'n', '9223372036854775808'}", {"n": 1}),
        ("return {'n', 1}", {"n": 1}),
        ("return {'n', {'1'}}", {"n": 1}),
    ],
)
@pytest_twisted.ensureDeferred
async def test_aSaveReplyTheScriptNeverSendsIsADatabaseError(
    redisDB: RedisDatabase, script: str, increments: dict[str, int]
) -> None:
    """
    A save answered with what the C{SAVE} script never sends (the script's
    reply is 1 when nothing was incremented, else each incremented field in
    order with its new value, a 64-bit integer's text) fails with a
    L{DatabaseError}, not with whatever reading it raises, nor with values
    for fields that were not incremented, or none for one that was.
    """
    await answeringSavesWith(redisDB, script)
    changes = SessionChanges(updated={"a": "1"}, increments=increments)
    with pytest.raises(DatabaseError, match="never sends"):
        await redisDB.save("k", changes)
    with pytest.raises(DatabaseError, match="never sends"):
        await redisDB.saveParts("k", False, None, False, (), {}, increments)


@pytest_twisted.ensureDeferred
async def test_anIncrementAnsweredWithoutItsFieldIsA503(
    redisServer: RedisServer, listen: Any
) -> None:
    """
    A request whose increment Redis answers with no value for its field
    gets a 503, not a 500 (the request read the missing value).
    """
    database = RedisDatabase(prefixed(redisServer))
    sessions = Sessions(Config(cookie=COOKIE), database)
    try:
        base, client, cookies = await servedAndWritten(sessions, listen, "/set/a/1")
        await answeringSavesWith(database, "return {'other', '1'}")
        response = await client.get(base + "/incr/n/1", cookies=cookies)
        await response.content()
        assert response.code == 503
    finally:
        await sessions.close()


async def newConnection(db: RedisDatabase, before: list[Any]) -> None:
    """
    Return once C{db}'s command connections are all new: none is in
    C{before}.
    """
    connections = db._redis._connections

    def new() -> bool:
        return bool(connections) and not set(connections) & set(before)

    await waitUntil(new, "a new connection")


@pytest_twisted.ensureDeferred
async def test_expiriesAreHeardAfterRedisRestartsWithoutTheirConfiguration(
    ownRedis: RedisServer,
) -> None:
    """
    Expiry notifications need C{notify-keyspace-events Ex}, which a Redis
    restarted with its own configuration (or a new master) does not have:
    the database asks for it again on each new connection, and expiries are
    still heard after the restart.
    """
    ownRedis.keyspaceEvents = ""
    ownRedis.restart()
    db = RedisDatabase(ownRedis.url)
    heard: list[Any] = []
    db.listen(lambda *a: heard.append(a))
    try:
        await db.eventsDelivered()
        before = list(db._redis._connections)
        ownRedis.restart()
        await newConnection(db, before)
        assert await reconnected(db, "k") is None
        await db.eventsDelivered()
        now = reactor.seconds()
        changes = SessionChanges(create=True, lifetime=Lifetime(now, now + 0.2))
        await db.save("k", changes)
        await until(heard, 1)
        assert heard == [("k", DestroyReason.expired)]
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_aServerRefusingExpiryConfigurationIsWarnedOfOnReconnecting(
    ownRedis: RedisServer, admin: Any, logged: list[dict[str, Any]]
) -> None:
    """
    A connection to a server that refuses C{CONFIG} (here its user lost
    the right, as a managed Redis's user has none) is warned of once, when
    the database reconnects to it as when it starts: the operator must set
    C{notify-keyspace-events} there.
    """
    await admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*")
    await admin.execute_command("ACL", "SETUSER", "app", "+@all")
    db = RedisDatabase(f"redis://app:pw@127.0.0.1:{ownRedis.port}/0", Clock())

    def warnings() -> list[str]:
        found = [formatEvent(e) for e in logged if e["log_level"] >= LogLevel.warn]
        return [text for text in found if "notify-keyspace-events" in str(text)]

    try:
        assert await db.load("k") is None
        assert warnings() == []
        await admin.execute_command("ACL", "SETUSER", "app", "-config")
        for _ in range(2):
            before = list(db._redis._connections)
            await admin.execute_command(
                "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
            )
            await newConnection(db, before)
            assert await reconnected(db, "k") is None
            await waitUntil(warnings, "a warning")
    finally:
        await db.close()
    (warning,) = warnings()
    assert "NOPERM" in str(warning) and "pw" not in str(warning)
