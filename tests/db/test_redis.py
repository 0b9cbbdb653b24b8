"""
What the Redis database adds: its URL, its layout, real expiry and events
across processes, the round-trip budget, and what happens when Redis fails.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import pytest_twisted
import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher

from tests.apps import kvApp, servedAndWritten
from tests.processes import Server, twistd
from tests.redis import RedisServer, freePort
from tests.support import COOKIE, cookieValue, plainClient, setCookies
from txsessions import Config, DatabaseError, DestroyReason, Sessions
from txsessions.db.redis import RedisDatabase, RedisURL
from txsessions.db.redis._connection import _encode
from txsessions.db.redis._wire import partsArguments, saveArguments
from txsessions.ids import redact, storeKey
from txsessions.interfaces import Lifetime, SessionChanges


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/2", RedisURL(port=6380, db=2)),
        (
            "redis://u:p%40ss@redis.example:7000/3?prefix=app:",
            RedisURL(
                host="redis.example",
                port=7000,
                db=3,
                username="u",
                password="p@ss",
                prefix="app:",
            ),
        ),
        ("redis://:secret@localhost", RedisURL(host="localhost", password="secret")),
        ("rediss://cache:6390/0", RedisURL(host="cache", port=6390, tls=True)),
        ("unix:///run/redis.sock?db=4", RedisURL(socket="/run/redis.sock", db=4)),
    ],
)
def test_urls(url: str, expected: RedisURL) -> None:
    assert RedisURL.parse(url) == expected


@pytest.mark.parametrize(
    "url", ["http://x", "redis://x/notanumber", "unix://", "redis://x:y"]
)
def test_badURLs(url: str) -> None:
    with pytest.raises(ValueError, match="bad Redis URL"):
        RedisURL.parse(url)


def prefixed(server: RedisServer) -> str:
    return f"{server.url}?prefix=r{uuid.uuid4().hex[:10]}:"


@pytest_twisted.async_yield_fixture
async def redisDB(redisServer: RedisServer) -> AsyncIterator[RedisDatabase]:
    db = RedisDatabase(prefixed(redisServer))
    yield db
    await db.close()


def until(events: list[Any], count: int) -> Deferred[None]:
    """
    A Deferred that fires once C{events} holds C{count} items, checked each
    time a listener appends; fails after 10 s.
    """
    done: Deferred[None] = Deferred()

    def check() -> None:
        if len(events) >= count and not done.called:
            done.callback(None)
        elif not done.called:
            reactor.callLater(0.01, check)

    check()
    return done.addTimeout(10, reactor)


@pytest_twisted.ensureDeferred
async def test_layout(redisDB: RedisDatabase, redisServer: RedisServer) -> None:
    now = reactor.seconds()
    key = storeKey("S" * 43)
    changes = SessionChanges(
        create=True, lifetime=Lifetime(now, now + 100), updated={"n": "5", "s": '"x"'}
    )
    assert await redisDB.save(key, changes) == {}
    redisKey = redisDB._prefix + key
    assert "S" * 43 not in redisKey
    fields = redisServer.cli("--no-raw", "HGETALL", redisKey)
    assert '"n"' in fields and '"5"' in fields and '"\\"x\\""' in fields
    ttl = int(redisServer.cli("PTTL", redisKey))
    assert 98_000 < ttl <= 100_000
    assert await redisDB.save(key, SessionChanges(increments={"n": 2})) == {"n": 7}
    stored = await redisDB.load(key)
    assert stored is not None and stored.values == {"n": "7", "s": '"x"'}


@pytest_twisted.ensureDeferred
async def test_aSessionLoadsInTheOrderItsKeysWereSet(redisDB: RedisDatabase) -> None:
    """
    A small session's keys load in the order they were set, as on the other
    databases, so that iteration and C{popitem} agree (helper-43: the load
    script answered them in a Lua table's order); a key set again keeps its
    place.
    """
    now = reactor.seconds()
    key = storeKey("O" * 43)
    names = [f"k{i}" for i in range(20)]
    first = SessionChanges(
        create=True,
        lifetime=Lifetime(now, now + 100),
        updated={name: str(i) for i, name in enumerate(names)},
    )
    assert await redisDB.save(key, first) == {}
    assert await redisDB.save(key, SessionChanges(updated={"k3": '"again"'})) == {}
    stored = await redisDB.load(key)
    assert stored is not None and list(stored.values) == names
    assert stored.values["k3"] == '"again"'
    parts = await redisDB.loadParts(key)
    assert parts is not None and list(parts[2]) == names


@pytest_twisted.ensureDeferred
async def test_aCorruptSessionLoadsAsNoneAndIsLoggedRedacted(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    """
    A hash that is no session (no creation time, or one that is no number)
    loads as none, in either form, with a warning that names its key
    shortened.
    """
    key = storeKey("C" * 43)
    redisKey = redisDB._prefix + key
    events: list[Any] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        redisServer.cli("HSET", redisKey, "n", "1")
        assert await redisDB.load(key) is None
        assert await redisDB.loadParts(key) is None
        await redisDB._redis.execute("HSET", redisKey, "\x00\x00c", "soon")
        assert await redisDB.loadParts(key) is None
    finally:
        globalLogPublisher.removeObserver(observer)
    warnings = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.warn]
    assert warnings == [f"session {redact(key)} is corrupt; ignored"] * 3
    assert not any(key in str(e) for e in events)


@pytest_twisted.ensureDeferred
async def test_scriptsAreSentAgainWhenRedisForgotThem(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    """
    Scripts run by their hash (C{EVALSHA}); after a restart or a C{SCRIPT
    FLUSH} Redis no longer knows them, and they are sent whole again.
    """
    now = reactor.seconds()
    key = storeKey("F" * 43)
    changes = SessionChanges(
        create=True, lifetime=Lifetime(now, now + 100), updated={"n": "1"}
    )
    await redisDB.save(key, changes)
    redisServer.cli("SCRIPT", "FLUSH")
    stored = await redisDB.load(key)
    assert stored is not None and stored.values == {"n": "1"}
    redisServer.cli("SCRIPT", "FLUSH")
    assert await redisDB.save(key, SessionChanges(increments={"n": 2})) == {"n": 3}


@pytest_twisted.ensureDeferred
async def test_scriptsUseEveryConnectionAndWaitForTheFirst(
    redisServer: RedisServer,
) -> None:
    """
    Scripts go straight to the pool's connections in turn.  One sent before
    any connection is up waits for the first; once Redis has closed them
    all, the pool reconnects (scripts sent meanwhile fail at once).
    """
    db = RedisDatabase(prefixed(redisServer), poolsize=2)
    connections = db._redis._connections
    try:
        now = reactor.seconds()
        key = storeKey("P" * 43)
        changes = SessionChanges(
            create=True, lifetime=Lifetime(now, now + 100), updated={"n": "1"}
        )
        assert not connections
        assert await db.save(key, changes) == {}
        for _ in range(100):
            if len(connections) == 2:
                break
            await db.load(key)
        for _ in range(4):
            stored = await db.load(key)
            assert stored is not None and stored.values == {"n": "1"}
        hosts = [c.transport.getHost() for c in connections]
        names = [f"addr={host.host}:{host.port} " for host in hosts]
        clients = redisServer.cli("CLIENT", "LIST").splitlines()
        for name in names:
            (line,) = [c for c in clients if name in c]
            assert "cmd=evalsha" in line

        before = list(connections)
        redisServer.cli("CLIENT", "KILL", "TYPE", "normal")
        # The pool reconnects at once: wait for two connections, both new.
        while len(connections) < 2 or any(c in before for c in connections):
            await _tick()
        stored = await db.load(key)
        assert stored is not None and stored.values == {"n": "1"}
    finally:
        await db.close()


def test_commandsAreFramedAsRedisDoes() -> None:
    """
    A command written directly is an array of bulk strings: text in UTF-8
    (its length in bytes), bytes as they are, integers as their digits.
    """
    framed = _encode(("EVALSHA", "ab", 1, "k\u00e9", b"\x00\r\n"))
    assert framed == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n"
        b"$3\r\nk\xc3\xa9\r\n$3\r\n\x00\r\n\r\n"
    )


def test_saveArgumentsAreOneJSONArrayOfStrings() -> None:
    """
    A save's arguments travel as the JSON array of strings the C{SAVE} script
    decodes, written by hand as a C{JSONEncoder} would write it: names and
    values with quotes, backslashes, control characters and characters
    outside the BMP escaped as JSON escapes them, the rest as they are.
    """
    odd = 'q"b\\s\nl\r\x00z\u00e9\U0001f600'
    changes = SessionChanges(
        create=True,
        lifetime=Lifetime(12.5, None),
        clear=True,
        deleted=frozenset({odd}),
        updated={odd: '"\\u2019"', "n": "1"},
        increments={"c": -3, "big": 10**20},
    )
    expected = ["1", "12.5", "", "1", "1", "7.25", "1000", "99.000001", "1"]
    expected += ["1", odd, "2", odd, '"\\u2019"', "n", "1"]
    expected += ["2", "c", "-3", "big", str(10**20)]
    text = saveArguments(changes, 7.25, "1000", 99.0000012)
    assert text == json.dumps(expected, ensure_ascii=False, separators=(",", ":"))
    parts = (True, (12.5, None), True, {odd}, changes.updated, changes.increments)
    assert partsArguments(7.25, "1000", 99.0000012, *parts) == text
    assert json.loads(saveArguments(SessionChanges(), 0.0, "1", 1.0)) == [
        "0",
        "",
        "",
        "0",
        "0",
        "0.0",
        "1",
        "1.000000",
        "0",
        "0",
        "0",
        "0",
    ]


@pytest_twisted.ensureDeferred
async def test_commandsGoToTheConnectionDirectly(redisDB: RedisDatabase) -> None:
    """
    Every connection of the pool takes the request path's commands
    directly, not through txredisapi's C{execute_command}: this fails when
    txredisapi changes what the direct path relies on (its protocol's
    C{replyQueue}, C{transport}, C{replyTimeout}, C{pipelining} and
    C{inMulti}), and the fallback is all that is left.
    """
    now = reactor.seconds()
    key = storeKey("D" * 43)
    changes = SessionChanges(
        create=True, lifetime=Lifetime(now, now + 100), updated={"n": "1"}
    )
    assert await redisDB.save(key, changes) == {}
    (connection,) = redisDB._redis._connections
    assert redisDB._redis._direct == {connection}

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("execute_command was called")

    connection.execute_command = refused
    stored = await redisDB.load(key)
    assert stored is not None and stored.values == {"n": "1"}
    assert await redisDB.save(key, SessionChanges(increments={"n": 2})) == {"n": 3}


@pytest_twisted.ensureDeferred
async def test_commandsAreSentWithoutDelay(redisDB: RedisDatabase) -> None:
    """
    Each command connection sends what it is given at once (C{TCP_NODELAY}),
    not held back while the last command is unacknowledged.
    """
    assert await redisDB.load(storeKey("N" * 43)) is None
    (connection,) = redisDB._redis._connections
    handle = connection.transport.getHandle()
    assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@pytest_twisted.ensureDeferred
async def test_commandsGoThroughTxredisapiWhenTheConnectionIsNotDirect(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    """
    A connection that does not allow the direct path (here, one taken off
    the list of those that do) is sent commands through
    C{execute_command}, with the same results and errors.
    """
    now = reactor.seconds()
    key = storeKey("T" * 43)
    changes = SessionChanges(
        create=True, lifetime=Lifetime(now, now + 100), updated={"n": "1"}
    )
    assert await redisDB.save(key, changes) == {}
    (connection,) = redisDB._redis._connections
    sent: list[tuple[Any, ...]] = []
    execute = connection.execute_command

    def counted(*args: Any, **kwargs: Any) -> Any:
        sent.append(args)
        return execute(*args, **kwargs)

    connection.execute_command = counted
    redisDB._redis._direct.clear()
    stored = await redisDB.load(key)
    assert stored is not None and stored.values == {"n": "1"}
    redisServer.cli("SCRIPT", "FLUSH")
    assert await redisDB.save(key, SessionChanges(increments={"n": 2})) == {"n": 3}
    assert [args[0] for args in sent] == ["EVALSHA", "EVALSHA", "EVAL"]
    with pytest.raises(txredisapi.ResponseError):
        await redisDB._redis.execute("INCR")


async def reconnected(db: RedisDatabase, key: str) -> Any:
    """
    Load C{key} once the database has reconnected (it retries with backoff),
    failing after about 30 s.
    """
    for _ in range(3000):
        try:
            return await db.load(key)
        except DatabaseError:
            await _tick()
    raise AssertionError("the database never reconnected")


@pytest_twisted.ensureDeferred
async def test_everyKeyHasATTL(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    now = reactor.seconds()
    for i, expiresAt in enumerate([None, now + 50]):
        changes = SessionChanges(create=True, lifetime=Lifetime(now, expiresAt))
        await redisDB.save(f"k{i}", changes)
    ttls = [int(redisServer.cli("TTL", redisDB._prefix + f"k{i}")) for i in range(2)]
    assert 29 * 24 * 3600 < ttls[0] <= 30 * 24 * 3600
    assert 0 < ttls[1] <= 50


@contextlib.asynccontextmanager
async def twoProcessesOn(
    url: str,
) -> AsyncIterator[tuple[RedisDatabase, RedisDatabase, dict[str, list[Any]]]]:
    """
    Two databases on one Redis prefix, as two processes would have, each
    recording what its listeners hear, both subscribed.
    """
    first, second = RedisDatabase(url), RedisDatabase(url)
    heard: dict[str, list[Any]] = {"first": [], "second": []}
    first.listen(lambda *a: heard["first"].append(a))
    second.listen(lambda *a: heard["second"].append(a))
    try:
        await first.eventsDelivered()
        await second.eventsDelivered()
        yield first, second, heard
    finally:
        await first.close()
        await second.close()


@pytest_twisted.async_yield_fixture
async def twoProcesses(
    redisServer: RedisServer,
) -> AsyncIterator[tuple[RedisDatabase, RedisDatabase, dict[str, list[Any]]]]:
    """
    L{twoProcessesOn} a prefix of their own.
    """
    async with twoProcessesOn(prefixed(redisServer)) as both:
        yield both


@pytest_twisted.ensureDeferred
async def test_realExpiryIsHeardOnceByEveryProcess(twoProcesses: Any) -> None:
    first, second, heard = twoProcesses
    now = reactor.seconds()
    changes = SessionChanges(create=True, lifetime=Lifetime(now, now + 0.3))
    await first.save("k", changes)
    await gatherResults([until(heard["first"], 1), until(heard["second"], 1)])
    await first.eventsDelivered()
    await second.eventsDelivered()
    assert heard == {
        "first": [("k", DestroyReason.expired)],
        "second": [("k", DestroyReason.expired)],
    }


@pytest_twisted.ensureDeferred
async def test_destroysReachEveryProcessOnce(twoProcesses: Any) -> None:
    first, second, heard = twoProcesses
    now = reactor.seconds()
    for key in ("a", "b", "c"):
        await first.save(key, SessionChanges(create=True, lifetime=Lifetime(now)))
    await second.destroy("a", DestroyReason.destroyByID)
    await first.rename("b", "b2")
    await second.destroyAll(DestroyReason.destroyAll)
    await first.eventsDelivered()
    await second.eventsDelivered()
    for name in heard:
        # Each process hears of its own changes as it makes them, and of the
        # other's through Redis: the order between the two may vary.
        assert sorted(heard[name]) == [
            ("a", DestroyReason.destroyByID),
            ("b", DestroyReason.regenerated),
            ("b2", DestroyReason.destroyAll),
            ("c", DestroyReason.destroyAll),
        ]


@pytest_twisted.ensureDeferred
async def test_destroysNameTheirKeyUnderAnyPrefix(redisServer: RedisServer) -> None:
    """
    A prefix beyond ASCII (Lua counts its bytes, Python its characters), and
    a key with a space in it, still leave destroy events with the session's
    own key, heard once in the process that destroyed it and in the others.
    """
    tilde = "\N{LATIN SMALL LETTER O WITH TILDE}"
    url = f"{redisServer.url}?prefix=sess{tilde}es{uuid.uuid4().hex[:10]}:"
    async with twoProcessesOn(url) as (first, second, heard):
        now = reactor.seconds()
        for key in ("k", "a b"):
            await first.save(key, SessionChanges(create=True, lifetime=Lifetime(now)))
            assert await first.destroy(key, DestroyReason.destroyed) is True
        await first.eventsDelivered()
        await second.eventsDelivered()
        expected = [("k", DestroyReason.destroyed), ("a b", DestroyReason.destroyed)]
        assert heard == {"first": expected, "second": expected}


@pytest_twisted.ensureDeferred
async def test_ownDestroysAreHeardOnceWhicheverWayComesFirst(
    redisDB: RedisDatabase,
) -> None:
    """
    A database hears of its own destroy through the first of the script's
    answer and the echo: once when the echo comes first, and once when the
    answer is lost after the script ran (the connection dropped).
    """
    heard: list[Any] = []
    redisDB.listen(lambda *a: heard.append(a))
    await redisDB.eventsDelivered()
    realEval = redisDB._eval
    now = reactor.seconds()
    for key in ("echoFirst", "answerLost"):
        await redisDB.save(key, SessionChanges(create=True, lifetime=Lifetime(now)))

    async def echoFirst(*args: Any) -> Any:
        answer = await realEval(*args)
        await redisDB.eventsDelivered()
        return answer

    async def answerLost(*args: Any) -> Any:
        await realEval(*args)
        raise ConnectionError("lost after the script ran")

    redisDB._eval = lambda *a: Deferred.fromCoroutine(echoFirst(*a))  # type: ignore[method-assign]
    assert await redisDB.destroy("echoFirst", DestroyReason.destroyed) is True
    assert heard == [("echoFirst", DestroyReason.destroyed)]
    redisDB._eval = lambda *a: Deferred.fromCoroutine(answerLost(*a))  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await redisDB.destroy("answerLost", DestroyReason.destroyed)
    await redisDB.eventsDelivered()
    assert heard == [
        ("echoFirst", DestroyReason.destroyed),
        ("answerLost", DestroyReason.destroyed),
    ]


@pytest_twisted.ensureDeferred
async def test_ownDestroysAreHeardWithoutTheSubscription(
    redisDB: RedisDatabase,
) -> None:
    """
    A database tells its own listeners of the destroys it makes as it makes
    them, so a server that has just started (or whose subscriber connection
    is reconnecting) still hears of them.  Here nothing it is subscribed to
    reaches it at all.
    """
    heard: list[Any] = []
    redisDB.listen(lambda *a: heard.append(a))
    redisDB._events.published = lambda message: None  # type: ignore[method-assign]
    now = reactor.seconds()
    for key in ("a", "b", "c"):
        await redisDB.save(key, SessionChanges(create=True, lifetime=Lifetime(now)))
    assert await redisDB.destroy("a", DestroyReason.destroyed) is True
    assert heard == [("a", DestroyReason.destroyed)]
    assert await redisDB.rename("b", "b2") is True
    assert heard[1:] == [("b", DestroyReason.regenerated)]
    assert await redisDB.destroyAll(DestroyReason.destroyAll) == 2
    assert sorted(heard[2:]) == [
        ("b2", DestroyReason.destroyAll),
        ("c", DestroyReason.destroyAll),
    ]


@pytest_twisted.ensureDeferred
async def test_concurrentRenamesHaveOneWinnerAndNoError(
    redisDB: RedisDatabase,
) -> None:
    """
    Twenty renames of one session at once (twenty requests regenerating it):
    exactly one moves it, the others answer C{False}, none fails, and the
    listeners hear of one regeneration.
    """
    heard: list[Any] = []
    redisDB.listen(lambda *a: heard.append(a))
    now = reactor.seconds()
    changes = SessionChanges(create=True, lifetime=Lifetime(now), updated={"a": "1"})
    await redisDB.save("k", changes)
    renames = [redisDB.rename("k", f"new{i}") for i in range(20)]
    moved = await gatherResults(renames)
    assert sorted(moved) == [False] * 19 + [True]
    winner = f"new{moved.index(True)}"
    stored = await redisDB.load(winner)
    assert stored is not None and stored.values == {"a": "1"}
    assert await redisDB.load("k") is None
    assert await redisDB.count() == 1
    await redisDB.eventsDelivered()
    assert heard == [("k", DestroyReason.regenerated)]


@pytest_twisted.ensureDeferred
async def test_aKeyNamedLikeTheEventsChannelIsASessionLikeAnother(
    redisDB: RedisDatabase,
) -> None:
    """
    A channel is never a key, so nothing SCAN finds is left out: a session
    whose key is C{events} (its Redis key is the events channel's name) is
    counted, listed and destroyed like any other.
    """
    now = reactor.seconds()
    await redisDB.save("events", SessionChanges(create=True, lifetime=Lifetime(now)))
    assert await redisDB.count() == 1
    assert [info.key for info in await redisDB.sessions()] == ["events"]
    assert await redisDB.destroyAll(DestroyReason.destroyAll) == 1
    assert await redisDB.load("events") is None


@pytest_twisted.ensureDeferred
async def test_whatIsNoSessionUnderThePrefixIsLeftAlone(
    redisDB: RedisDatabase, redisServer: RedisServer
) -> None:
    """
    A key under the prefix that is no session (no hash: something else put
    it there) is neither counted, listed nor destroyed, and does not stop
    destroy-all halfway with C{WRONGTYPE} (helper-26: it did both).
    """
    now = reactor.seconds()
    await redisDB.save("s1", SessionChanges(create=True, lifetime=Lifetime(now)))
    junk = redisDB._prefix + "junk"
    redisServer.cli("SET", junk, "x")
    assert await redisDB.count() == 1
    assert [info.key for info in await redisDB.sessions()] == ["s1"]
    assert await redisDB.destroyAll(DestroyReason.destroyAll) == 1
    assert await redisDB.load("s1") is None
    assert redisServer.cli("GET", junk).strip() == "x"


@pytest.mark.parametrize(
    ("url", "clients"),
    [
        ("unix:///nowhere/redis.sock", "unixClients"),
        ("redis://127.0.0.1:1/0", "tcpClients"),
    ],
)
def test_everyConnectionUsesTheGivenReactorAndConnectTimeout(
    url: str, clients: str
) -> None:
    """
    The command connections and the subscriber's are made with the reactor
    and the C{connectTimeout} the database was given, over TCP and over a
    unix socket alike.
    """
    memory = MemoryReactorClock()
    db = RedisDatabase(url, Clock(), connectTimeout=2.5, reactor=memory)
    try:
        attempts = getattr(memory, clients)
        assert len(attempts) == 2
        timeouts = [
            attempt[3 if clients == "tcpClients" else 2] for attempt in attempts
        ]
        assert timeouts == [2.5, 2.5]
    finally:
        db.close()


def commandCounts(server: RedisServer) -> dict[str, int]:
    counts = {}
    for line in server.cli("INFO", "commandstats").splitlines():
        match = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


TOP_LEVEL = {"eval": "script", "evalsha": "script", "hgetall": "hgetall"}
"""
The commands a request may send: every load and save is a script.  INFO
commandstats also counts the commands a script runs inside Redis (its
C{HGETALL}), which cost no round trip, so C{hgetall} is counted to show it
runs once per load and never on its own.
"""


def roundTripsSince(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    trips: dict[str, int] = {}
    for name, kind in TOP_LEVEL.items():
        calls = after.get(name, 0) - before.get(name, 0)
        if calls:
            trips[kind] = trips.get(kind, 0) + calls
    return trips


@pytest_twisted.ensureDeferred
async def test_roundTripsPerRequest(redisServer: RedisServer, listen: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE), RedisDatabase(prefixed(redisServer)))
    try:
        base, client, cookies = await servedAndWritten(sessions, listen, "/set/a/1")
        # Once per Redis start, a script's first run costs one more trip
        # (EVALSHA answers NOSCRIPT, then EVAL): run each first.
        await (await client.get(base + "/set/a/0", cookies=cookies)).content()
        budget = {}
        for name, path in (
            ("read", "/get/a"),
            ("write", "/set/a/2"),
            ("new", "/set/b/1"),
        ):
            before = commandCounts(redisServer)
            if name == "new":
                _, client = listen(sessions.wrap(kvApp(sessions).resource()))
            response = await client.get(
                base + path, cookies={} if name == "new" else cookies
            )
            await response.content()
            budget[name] = roundTripsSince(before, commandCounts(redisServer))
        assert budget == {
            "read": {"script": 1, "hgetall": 1},
            "write": {"script": 2, "hgetall": 1},
            "new": {"script": 1},
        }
    finally:
        await sessions.close()


# Faults (security.md F1-F9)


@pytest.fixture
def ownRedis(tmp_path: Any) -> Any:
    server = RedisServer.start(tmp_path)
    yield server
    server.stop()


async def fetch(client: Any, url: str, cookies: dict[str, str] | None = None) -> Any:
    response = await client.get(url, cookies=cookies or {})
    response.body = await response.content()
    return response


@pytest_twisted.ensureDeferred
async def test_F1_downAtStartThenBack(tmp_path: Any, listen: Any) -> None:
    """
    With nothing listening, a request gets its 503 at once: the manager's
    clock never moves, so its deadline cannot be what answered.  Once Redis
    is there, requests work, without a restart.
    """
    port = freePort()
    clock = Clock()
    sessions = Sessions(
        Config(cookie=COOKIE),
        RedisDatabase(f"redis://127.0.0.1:{port}/0", clock),
        clock,
    )
    try:
        base, client = listen(sessions.wrap(kvApp(sessions).resource()))
        response = await fetch(client, base + "/set/a/1")
        assert response.code == 503 and setCookies(response) == []
        server = RedisServer.start(tmp_path, port)
        try:
            for _ in range(3000):  # the pool reconnects on its own, with backoff
                response = await fetch(client, base + "/set/a/1")
                if response.code == 200:
                    break
                await _tick()
            assert response.code == 200 and cookieValue(response, COOKIE)
        finally:
            server.stop()
    finally:
        await sessions.close()


@pytest_twisted.ensureDeferred
async def test_aRefusedConnectionFailsAtOnceSayingWhere() -> None:
    """
    A database whose server refuses connections fails each call at once,
    with a L{DatabaseError} that says the connection was refused, and where:
    the calls made before the first attempt failed, and those after.
    """
    port = freePort()
    db = RedisDatabase(f"redis://127.0.0.1:{port}/0", Clock())
    try:
        first = db.load("k")
        with pytest.raises(DatabaseError) as caught:
            await first
        expected = f"the connection to Redis at 127.0.0.1:{port} was refused"
        assert str(caught.value) == expected
        with pytest.raises(DatabaseError, match=expected):
            await db.count()
        with pytest.raises(DatabaseError, match=expected):
            await db.save("k", SessionChanges(create=True, lifetime=Lifetime(0)))
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_aRefusedHandshakeFailsAtOnceSayingWhy(redisServer: RedisServer) -> None:
    """
    A server that accepts the connection but refuses its set-up (here, a
    password it does not have) fails each call at once, saying why.
    """
    db = RedisDatabase(f"redis://:wrong@127.0.0.1:{redisServer.port}/0", Clock())
    try:
        expected = f"Redis at 127.0.0.1:{redisServer.port} refused the connection's"
        with pytest.raises(DatabaseError, match=expected):
            await db.load("k")
        with pytest.raises(DatabaseError, match=expected) as caught:
            await db.load("k")
        assert "wrong" not in str(caught.value)
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_aRefusedHandshakeLeavesNoUnhandledError(
    redisServer: RedisServer,
) -> None:
    """
    A refused set-up is reported by the calls that fail, never as an
    unhandled error in a L{Deferred} when the collector finds one: the
    subscriber's connection is refused too, and its factory's L{Deferred}
    failed with no one waiting for it.
    """
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    db = RedisDatabase(f"redis://:wrong@127.0.0.1:{redisServer.port}/0", Clock())
    globalLogPublisher.addObserver(observer)
    try:
        with pytest.raises(DatabaseError, match="refused the connection's"):
            await db.load("k")
        while db._subscriber.factory.deferred is not None:
            await _tick()
        await db.close()
        for _ in range(3):
            await _tick()
        del db
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observer)
    unhandled = [e for e in events if "Unhandled error" in (formatEvent(e) or "")]
    assert unhandled == []


@pytest_twisted.ensureDeferred
async def test_adminCommandSaysTheConnectionWasRefused() -> None:
    """
    C{txsessions --database redis://... count} against a port with nothing
    listening reports the refused connection, and where, instead of waiting
    for its timeout (its clock here never moves).
    """
    from txsessions.admin import FAILED, Options, administer

    port = freePort()
    options = Options()
    options.parseOptions(["--database", f"redis://127.0.0.1:{port}/0", "count"])
    out, err = io.StringIO(), io.StringIO()
    code = await administer(options, Clock(), out, err)
    assert code == FAILED and out.getvalue() == ""
    assert f"the connection to Redis at 127.0.0.1:{port} was refused" in (
        err.getvalue()
    )
    assert err.getvalue().count("\n") == 1


@pytest_twisted.ensureDeferred
async def test_downAtStartIsLoggedOnceThenRecovers(tmp_path: Any) -> None:
    """
    Redis down when a database opens: one warning, however many times the
    pool tries again; one line when it is back, and the database works.
    """
    port = freePort()
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    db = RedisDatabase(f"redis://127.0.0.1:{port}/0")
    factory = db._redis.factory
    factory.initialDelay, factory.maxDelay = 0.01, 0.05
    attempts: list[object] = []
    failed = db._redis.attemptFailed

    def counted(failure: Any) -> None:
        attempts.append(failure)
        failed(failure)

    db._redis.attemptFailed = counted  # type: ignore[method-assign]
    try:
        while len(attempts) < 5:
            await _tick()
        warnings = [e for e in events if e["log_level"] >= LogLevel.warn]
        assert [formatEvent(e) for e in warnings] == [
            "the session database is unreachable: the connection to Redis at "
            f"127.0.0.1:{port} was refused; requests get a 503 at once until it "
            "is back (retrying)"
        ]
        server = RedisServer.start(tmp_path, port)
        try:
            now = reactor.seconds()
            changes = SessionChanges(create=True, lifetime=Lifetime(now))
            for _ in range(3000):
                try:
                    await db.save("k", changes)
                    break
                except DatabaseError:
                    await _tick()
            assert await db.load("k") is not None
            back = [formatEvent(e) for e in events if "again" in formatEvent(e)]
            assert back == [
                f"the session database at 127.0.0.1:{port} is reachable again"
            ]
        finally:
            server.stop()
    finally:
        globalLogPublisher.removeObserver(observer)
        await db.close()


@pytest_twisted.ensureDeferred
async def test_killedThenBackFailsFastThenRecovers(ownRedis: RedisServer) -> None:
    """
    A server killed mid-run: the calls after it fail at once, saying the
    connection was lost or refused; once it is back the database works.
    """
    db = RedisDatabase(ownRedis.url, Clock())
    try:
        changes = SessionChanges(create=True, lifetime=Lifetime(0))
        await db.save("k", changes)
        ownRedis.kill()
        while db._redis.down is None:
            await _tick()
        with pytest.raises(DatabaseError, match=f"Redis at 127.0.0.1:{ownRedis.port}"):
            await db.load("k")
        ownRedis.run()
        assert await reconnected(db, "k") is None  # restarted empty
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_F3_pausedPastTheDeadline(ownRedis: RedisServer, listen: Any) -> None:
    sessions = Sessions(
        Config(cookie=COOKIE, databaseTimeout=0.5), RedisDatabase(ownRedis.url)
    )
    try:
        base, client = listen(sessions.wrap(kvApp(sessions).resource()))
        response = await fetch(client, base + "/set/a/1")
        cookies = {COOKIE: cookieValue(response, COOKIE)}
        sleeping = await ownRedis.sleep(3)
        started = reactor.seconds()
        response = await fetch(client, base + "/set/a/2", cookies)
        assert reactor.seconds() - started < 2
        assert response.code == 503 and setCookies(response) == []
        await sleeping
        response = await fetch(client, base + "/get/a", cookies)
        assert response.code == 200
        assert json.loads(response.body) == "1"
    finally:
        await sessions.close()


@pytest.mark.parametrize("deadlineFrom", ["database", "manager"])
@pytest_twisted.ensureDeferred
async def test_aSaveAnswered503NeverLands(
    ownRedis: RedisServer, listen: Any, deadlineFrom: str
) -> None:
    """
    Redis paused (SIGSTOP) after the load, while the save is on its way:
    the client gets its 503 at the deadline, and once Redis resumes
    (SIGCONT) the save, which reaches it past its deadline, is refused;
    whether the database was given the deadline or only the manager was.
    """
    from klein import Klein

    sessions = Sessions(
        Config(cookie=COOKIE, databaseTimeout=0.5),
        RedisDatabase(ownRedis.url, deadline=0.5)
        if deadlineFrom == "database"
        else RedisDatabase(ownRedis.url),
    )
    app = Klein()

    @app.route("/pause-then-write")
    @sessions.withSession
    def pauseThenWrite(request: Any, session: Any) -> str:
        ownRedis.pause()
        session.set("a", "after the pause")
        return "ok"

    try:
        base, client = listen(sessions.wrap(kvApp(sessions).resource()))
        pauseBase, pauseClient = listen(app.resource())
        response = await fetch(client, base + "/set/a/1")
        cookies = {COOKIE: cookieValue(response, COOKIE)}
        try:
            response = await fetch(
                pauseClient, pauseBase + "/pause-then-write", cookies
            )
            assert response.code == 503 and setCookies(response) == []
        finally:
            ownRedis.resume()
        response = await fetch(client, base + "/get/a", cookies)
        assert response.code == 200
        assert json.loads(response.body) == "1"
    finally:
        await sessions.close()


@pytest_twisted.ensureDeferred
async def test_F2_F4_killedBetweenLoadAndSaveThenRestartedEmpty(
    ownRedis: RedisServer, listen: Any
) -> None:
    from klein import Klein

    sessions = Sessions(
        Config(cookie=COOKIE, databaseTimeout=2), RedisDatabase(ownRedis.url)
    )
    app = Klein()

    @app.route("/kill-then-write")
    @sessions.withSession
    def killThenWrite(request: Any, session: Any) -> str:
        ownRedis.kill()
        session.set("a", "after the kill")
        return "ok"

    try:
        base, client = listen(sessions.wrap(kvApp(sessions).resource()))
        killBase, killClient = listen(app.resource())
        response = await fetch(client, base + "/set/a/1")
        cookies = {COOKIE: cookieValue(response, COOKIE)}
        response = await fetch(killClient, killBase + "/kill-then-write", cookies)
        assert response.code == 503 and setCookies(response) == []
        ownRedis.run()
        for _ in range(3000):
            response = await fetch(client, base + "/all", cookies)
            if response.code == 200:
                break
            await _tick()
        assert response.code == 200
        assert json.loads(response.body) == {"isNew": True, "values": {}}
    finally:
        await sessions.close()


def twistdPair(url: str, directory: Any, *options: str) -> tuple[Any, list[Server]]:
    """
    A client without connection reuse, and two twistd demos on one Redis.
    """

    client = plainClient()
    argv = [
        twistd(),
        "-n",
        "--pidfile=",
        "txsessions",
        "--database",
        url,
        *options,
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]
    return client, [Server(argv, str(directory)), Server(argv, str(directory))]


@pytest_twisted.ensureDeferred
async def test_twoTwistdProcessesShareOneRedis(
    redisServer: RedisServer, tmp_path: Any
) -> None:
    client, [first, second] = twistdPair(prefixed(redisServer), tmp_path)
    try:
        one, two = await first.start(), await second.start()
        response = await client.head(one + "/login")
        await response.content()
        cookies = {
            "mycookiesessionnameid": cookieValue(response, "mycookiesessionnameid")
        }
        response = await fetch(client, two + "/secret", cookies)
        assert response.body == b"The cake is a lie!\n"
        await fetch(client, two + "/logout", cookies)
        response = await fetch(client, one + "/secret", cookies)
        assert (response.code, response.body) == (403, b"Forbidden\n")
    finally:
        await first.stop()
        await second.stop()


@pytest_twisted.ensureDeferred
async def test_anExpiryIsLoggedOnceByEachTwistd(
    redisServer: RedisServer, tmp_path: Any
) -> None:
    client, servers = twistdPair(
        prefixed(redisServer), tmp_path, "--expires", "1", "--log-session-events"
    )
    try:
        one = await servers[0].start()
        await servers[1].start()
        response = await client.head(one + "/login")
        await response.content()
        key = storeKey(cookieValue(response, "mycookiesessionnameid"))
        line = f"session {key[:6]}\N{HORIZONTAL ELLIPSIS} destroyed (expired)"

        async def logged(server: Server) -> None:
            for _ in range(1000):
                if line in server.output:
                    return
                await Deferred.fromCoroutine(_tick())
            raise AssertionError(f"no expiry logged:\n{server.output}")

        await gatherResults([Deferred.fromCoroutine(logged(s)) for s in servers])
        for server in servers:
            assert server.output.count(line) == 1
            assert key not in server.output
    finally:
        for server in servers:
            await server.stop()


async def _tick() -> None:
    from twisted.internet.task import deferLater

    await deferLater(reactor, 0.01, lambda: None)


def test_sentinelURLs() -> None:
    assert RedisURL.parse("redis+sentinel://:pw@a:26380,b/mymaster/3") == RedisURL(
        host="",
        port=0,
        db=3,
        password="pw",
        sentinels=(("a", 26380), ("b", 26379)),
        service="mymaster",
    )
    with pytest.raises(ValueError, match="names the service"):
        RedisURL.parse("redis+sentinel://a:26379/")


@pytest_twisted.ensureDeferred
async def test_throughSentinel(redisServer: RedisServer, tmp_path: Any) -> None:
    import subprocess

    from tests.redis import freePort, waitFor

    port = freePort()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\n"
        f"sentinel monitor mymaster 127.0.0.1 {redisServer.port} 1\n"
    )
    sentinel = subprocess.Popen(
        [redisServer.program, str(config), "--sentinel"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        waitFor(sentinel, "+monitor master mymaster")
        url = f"redis+sentinel://127.0.0.1:{port}/mymaster/0?prefix=s{uuid.uuid4().hex[:8]}:"
        db = RedisDatabase(url)
        heard: list[Any] = []
        db.listen(lambda *a: heard.append(a))
        try:
            now = reactor.seconds()
            await db.save(
                "k",
                SessionChanges(create=True, lifetime=Lifetime(now), updated={"a": "1"}),
            )
            stored = await db.load("k")
            assert stored is not None and stored.values == {"a": "1"}
            await db.eventsDelivered()
            assert await db.destroy("k", DestroyReason.destroyed) is True
            await db.eventsDelivered()
            assert heard == [("k", DestroyReason.destroyed)]
        finally:
            await db.close()
    finally:
        sentinel.terminate()
        sentinel.wait(timeout=30)


@pytest_twisted.ensureDeferred
async def test_theRequestPathLoadsAndSavesInParts(
    redisServer: RedisServer, listen: Any, monkeypatch: Any
) -> None:
    """
    Requests load and save a Redis session through C{loadParts} and
    C{saveParts}, not through C{load} and C{save} and the records they take
    and give: a new session, a write and a read.
    """
    database = RedisDatabase(prefixed(redisServer))

    def notThisWay(*args: Any) -> Any:
        raise AssertionError("the request path called load or save")

    monkeypatch.setattr(database, "load", notThisWay)
    monkeypatch.setattr(database, "save", notThisWay)
    sessions = Sessions(Config(cookie=COOKIE), database)
    try:
        base, client = listen(sessions.wrap(kvApp(sessions).resource()))
        response = await client.get(base + "/set/a/1")
        assert response.code == 200
        await response.content()
        cookies = {COOKIE: cookieValue(response, COOKIE)}
        response = await client.get(base + "/set/b/2", cookies=cookies)
        assert response.code == 200
        await response.content()
        response = await client.get(base + "/all", cookies=cookies)
        assert (await response.json())["values"] == {"a": "1", "b": "2"}
    finally:
        await sessions.close()
