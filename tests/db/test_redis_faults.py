"""
The Redis database when Redis, or what it answers, goes wrong: a set-up
refused while reconnecting, an increment Redis cannot hold, a reply that is
not what the script sends, and a restarted server that forgot its
configuration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher

from tests.db.test_redis import _tick, reconnected
from tests.redis import RedisServer
from txsessions import DatabaseError
from txsessions.db.redis import RedisDatabase
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
