"""
A Redis server shared with others: other applications' keys expiring in the
same database, other deployments in other databases of the server, and the
keyspace notifications others configured.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import reactor
from twisted.logger import LogLevel, formatEvent

from tests.db.test_redis import prefixed, twoProcessesOn
from tests.db.test_redis_faults import logged, ownRedis  # noqa: F401
from tests.redis import RedisServer
from txsessions import DestroyReason
from txsessions.db.redis import RedisDatabase
from txsessions.db.redis._events import eventsChannel
from txsessions.db.redis._keyspace import expiryFlags
from txsessions.interfaces import Lifetime, SessionChanges


@pytest_twisted.async_yield_fixture
async def other(redisServer: RedisServer) -> AsyncIterator[Any]:
    """
    A connection of another application to the tests' Redis, its replies
    left as bytes.
    """
    connection = await txredisapi.Connection(
        "127.0.0.1", redisServer.port, reconnect=False, charset=None
    )
    yield connection
    await connection.disconnect()


def countingLost(db: RedisDatabase) -> list[object]:
    """
    A list that grows each time C{db}'s subscriber connection is lost.
    """
    lost: list[object] = []
    subscriber = db._subscriber
    wasLost = subscriber.lost

    def recorded() -> None:
        lost.append(None)
        wasLost()

    subscriber.lost = recorded  # type: ignore[method-assign]
    return lost


def delivered(db: RedisDatabase) -> Any:
    """
    C{db.eventsDelivered()}, failing after 10 s (a message may be lost).
    """
    return db.eventsDelivered().addTimeout(10, reactor)


def foreignExpiry(other: Any, name: bytes) -> Any:
    """
    Tell database 0's subscribers that a key C{name} expired, as Redis does
    (another application's key, say).
    """
    return other.execute_command("PUBLISH", b"__keyevent@0__:expired", name)


async def destroyedAndHeard(
    first: RedisDatabase, second: RedisDatabase, heard: dict[str, list[Any]]
) -> None:
    """
    Create and destroy a session through C{first}, and check C{second}
    heard of it, through its subscription.
    """
    now = reactor.seconds()
    await first.save("k", SessionChanges(create=True, lifetime=Lifetime(now)))
    await first.destroy("k", DestroyReason.destroyed)
    await delivered(second)
    assert heard["second"] == [("k", DestroyReason.destroyed)]


@pytest.mark.parametrize("name", [b"12345", b"\xff\xfenot-utf-8"])
@pytest_twisted.ensureDeferred
async def test_anotherApplicationsKeyExpiringKeepsTheSubscription(
    redisServer: RedisServer, other: Any, name: bytes
) -> None:
    """
    Another application's key expiring in the same database, named by
    digits or by bytes that are not UTF-8, is no session's: the subscriber
    leaves it alone, keeps its connection, and hears the destroys that
    follow.
    """
    async with twoProcessesOn(prefixed(redisServer)) as (first, second, heard):
        lost = countingLost(second)
        await foreignExpiry(other, name)
        await destroyedAndHeard(first, second, heard)
        assert lost == [], "the subscriber's connection was dropped"


@pytest_twisted.ensureDeferred
async def test_aSessionKeyNamedByDigitsExpires(
    redisServer: RedisServer, other: Any
) -> None:
    """
    A session's Redis key that reads as a number (a prefix of digits, a key
    of digits) is heard of as the text it is when it expires.
    """
    prefix = str(random.randrange(10**9, 10**10))
    db = RedisDatabase(f"{redisServer.url}?prefix={prefix}")
    heard: list[Any] = []
    db.listen(lambda *a: heard.append(a))
    try:
        await db.eventsDelivered()
        await foreignExpiry(other, f"{prefix}123".encode())
        await delivered(db)
        assert heard == [("123", DestroyReason.expired)]
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_aMessageThatCannotBeHandledIsLoggedOnceAndDropped(
    redisServer: RedisServer,
    other: Any,
    logged: list[dict[str, Any]],  # noqa: F811
) -> None:
    """
    A message whose handling fails is dropped, not the subscription with
    it: logged once for each kind of error, quoting nothing of it, and the
    destroys that follow are heard.
    """
    async with twoProcessesOn(prefixed(redisServer)) as (first, second, heard):
        lost = countingLost(second)

        def failing(redisKey: str) -> None:
            raise RuntimeError("broken")

        second._events.expired = failing  # type: ignore[method-assign]
        await foreignExpiry(other, b"secret-key-one")
        await foreignExpiry(other, b"secret-key-two")
        await destroyedAndHeard(first, second, heard)
        assert lost == [], "the subscriber's connection was dropped"
    # txsessions' own: under the asyncio reactor, an AlreadyCalledError
    # from twisted.internet.defer was once logged here too (not understood
    # yet; see the closing note of stop 31).
    errors = [
        formatEvent(e)
        for e in logged
        if e["log_level"] >= LogLevel.error
        and e.get("log_namespace", "").startswith("txsessions")
    ]
    (error,) = errors
    assert "RuntimeError" in error and "dropped" in error
    assert "secret" not in error and "broken" not in error


def test_theEventsChannelNamesTheDatabase() -> None:
    """
    The events channel of a database numbered other than 0 names its
    number; database 0's keeps the name earlier versions gave every
    database, so that both versions' processes on it hear each other.
    """
    assert eventsChannel("app:", 0) == "app:events"
    assert eventsChannel("app:", 1) == "app:events@1"
    assert eventsChannel("app:", 12) != eventsChannel("app:", 1)


@pytest_twisted.ensureDeferred
async def test_destroysStayInTheirDatabase(redisServer: RedisServer) -> None:
    """
    Two deployments kept apart by database number, with the same prefix,
    do not hear each other's destroys (pub/sub channels are the server's,
    shared by its databases), as they do not hear each other's expiries.
    """
    query = prefixed(redisServer).partition("?")[2]
    base = f"redis://127.0.0.1:{redisServer.port}"
    staging = RedisDatabase(f"{base}/1?{query}")
    production = RedisDatabase(f"{base}/2?{query}")
    heard: list[Any] = []
    production.listen(lambda *a: heard.append(a))
    try:
        await staging.eventsDelivered()
        await production.eventsDelivered()
        now = reactor.seconds()
        await staging.save("s", SessionChanges(create=True, lifetime=Lifetime(now)))
        assert await production.load("s") is None
        await staging.destroyAll(DestroyReason.destroyAll)
        await staging.eventsDelivered()
        await production.eventsDelivered()
        assert heard == []
    finally:
        await staging.close()
        await production.close()


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        ("", "Ex"),
        ("K", "KEx"),
        ("Kx", "KxE"),
        ("E", "Ex"),
        ("Ex", None),
        ("xE", None),
        ("AKE", None),
        ("KEA", None),
        ("Eg$lshz", "Eg$lshzx"),
    ],
)
def test_expiryFlagsAddWhatIsMissing(current: str, wanted: str | None) -> None:
    """
    The flags asked for are the server's, with C{E} and C{x} added where
    missing (C{A} holds C{x}); none when nothing is.
    """
    assert expiryFlags(current) == wanted


async def keyspaceEvents(server: RedisServer) -> str:
    """
    The C{notify-keyspace-events} flags of C{server}.
    """
    connection = await txredisapi.Connection("127.0.0.1", server.port, reconnect=False)
    try:
        reply = await connection.execute_command(
            "CONFIG", "GET", "notify-keyspace-events"
        )
    finally:
        await connection.disconnect()
    return str(reply[1])


def configSets(server: RedisServer) -> int:
    """
    How many C{CONFIG SET} commands C{server} has run.
    """
    for line in server.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_config|set:calls="):
            return int(line.split("=", 1)[1].split(",", 1)[0])
    return 0


async def openedOn(server: RedisServer, flags: str) -> str:
    """
    Set C{server}'s C{notify-keyspace-events} to C{flags}, open a database
    on it, and answer the flags once its connections are made.
    """
    server.cli("CONFIG", "SET", "notify-keyspace-events", flags)
    db = RedisDatabase(prefixed(server))
    try:
        await db.eventsDelivered()
        await db.count()
    finally:
        await db.close()
    return await keyspaceEvents(server)


@pytest_twisted.ensureDeferred
async def test_theOperatorsKeyspaceEventsAreKept(
    ownRedis: RedisServer,  # noqa: F811
) -> None:
    """
    A server already sending every keyspace event (for another application)
    is left as it is: not one C{CONFIG SET}.
    """
    flags = await openedOn(ownRedis, "KEA")
    assert set(flags) == set("KEA")
    assert configSets(ownRedis) == 1  # the test's own


@pytest_twisted.ensureDeferred
async def test_expiryEventsAreAddedToTheOperators(
    ownRedis: RedisServer,  # noqa: F811
) -> None:
    """
    A server sending other keyspace events, but not expiries, is asked for
    them too, keeping the others.
    """
    flags = await openedOn(ownRedis, "Kg")
    assert set(flags) == set("KgEx")
