# -*- test-case-name: tests.db.test_conformance,tests.db.test_redis -*-
r"""
Sessions in Redis, over txredisapi: shared by every process and machine
that points at the same server.

Layout: one hash per session at C{prefix + key}, each field a session field
with its JSON text, plus C{"\\0\\0c"} (created) and C{"\\0\\0e"} (expires, in
the manager's clock).  The hash's TTL is set in the same round trip as every
write: the session's lifetime, or C{defaultTTL} for sessions without one
(refreshed on each write), so that no key lives forever.

One round trip loads a session (a Lua script answering with one JSON
string); one saves it (a Lua script that never re-creates a session
deleted meanwhile, and increments with C{HINCRBY}).  A write that reaches
Redis more than C{staleAfter} seconds after it was sent (queued while the
connection was down) is refused, so it never lands long after its request
failed.

Destroy events reach every process: destroys publish on the C{prefix +
"events"} channel, and expiries come from Redis keyspace notifications
(C{notify-keyspace-events Ex}, which this module sets when Redis allows).
Each process's listeners hear of each event once: of its own destroys
through whichever comes first, the script's answer or the event's echo
(each message names the database that published it), so that a process
whose subscription is not in place yet still hears of them; and of the
rest through its subscription.  A message is C{reason@origin key}.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ..ids import redact
from ..interfaces import DestroyListener, IDatabase
from ..listeners import Listeners
from ..records import DestroyReason, SessionChanges, SessionInfo, StoredSession
from ._persistent import lifetimeOf

_log = Logger()

CREATED = "\x00\x00c"
EXPIRES = "\x00\x00e"

_LOAD = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
return cjson.encode(fields)
"""
# A session's hash as one JSON array: one bulk string is cheaper to read than
# HGETALL's reply (txredisapi's own parser, used when hiredis is missing,
# reads each element of a multi-element reply in a turn of the reactor of its
# own).

# The changes come as one JSON array of strings: txredisapi spends about 2 us
# framing each argument of a command.
_SAVE = """
local ARGV = cjson.decode(ARGV[1])
local key = KEYS[1]
local create, created, expires = ARGV[1], ARGV[2], ARGV[3]
local lifetime, clear = ARGV[4], ARGV[5]
local now, ttl, staleAfter = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local clock = redis.call('TIME')
if tonumber(clock[1]) > staleAfter then return redis.error_reply('STALE write') end
if create == '1' then
  redis.call('DEL', key)
  redis.call('HSET', key, '\\0\\0c', created)
  lifetime = '1'
else
  if redis.call('EXISTS', key) == 0 then return false end
  local stored = redis.call('HGET', key, '\\0\\0e')
  if stored and tonumber(stored) <= now then return false end
end
local i = 9
if clear == '1' then
  local fields = redis.call('HKEYS', key)
  for _, field in ipairs(fields) do
    if string.sub(field, 1, 2) ~= '\\0\\0' then redis.call('HDEL', key, field) end
  end
end
local n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do redis.call('HDEL', key, ARGV[i]); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do redis.call('HSET', key, ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
local result = {'ok'}
for j = 1, n do
  local field, delta = ARGV[i], ARGV[i + 1]
  i = i + 2
  local current = redis.call('HGET', key, field)
  if current and not string.match(current, '^%-?%d+$') then
    redis.call('HSET', key, field, '0')
  end
  redis.call('HINCRBY', key, field, delta)
  table.insert(result, field)
  -- Read back as text: Lua holds HINCRBY's answer as a double.
  table.insert(result, redis.call('HGET', key, field))
end
if lifetime == '1' then
  if expires == '' then redis.call('HDEL', key, '\\0\\0e')
  else redis.call('HSET', key, '\\0\\0e', expires) end
end
local stored = redis.call('HGET', key, '\\0\\0e')
if stored then
  redis.call('PEXPIRE', key, math.max(1, math.floor((tonumber(stored) - now) * 1000)))
else
  redis.call('PEXPIRE', key, ttl)
end
return result
"""

_RENAME = """
local old, new, channel = KEYS[1], KEYS[2], ARGV[2]
local stored = redis.call('HGET', old, '\\0\\0e')
if redis.call('EXISTS', old) == 0 then return 0 end
if stored and tonumber(stored) <= tonumber(ARGV[1]) then return 0 end
if redis.call('RENAMENX', old, new) == 0 then return 0 end
redis.call('PUBLISH', channel, 'regenerated@' .. ARGV[4] .. ' ' .. ARGV[3])
return 1
"""

_DESTROY = """
local channel, reason, origin = ARGV[1], ARGV[2], ARGV[4]
local prefixLength = tonumber(ARGV[3])
local removed = {}
for _, key in ipairs(KEYS) do
  if redis.call('DEL', key) == 1 then
    local name = string.sub(key, prefixLength + 1)
    table.insert(removed, name)
    redis.call('PUBLISH', channel, reason .. '@' .. origin .. ' ' .. name)
  end
end
return removed
"""

_DESCRIBE = """
local result = {}
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'hash' then
    local fields = redis.call('HGETALL', key)
    local created, expires, size = nil, '', 0
    for i = 1, #fields, 2 do
      local name, value = fields[i], fields[i + 1]
      if name == '\\0\\0c' then created = value
      elseif name == '\\0\\0e' then expires = value
      elseif string.sub(name, 1, 2) ~= '\\0\\0' then size = size + #name + #value end
    end
    if created then
      table.insert(result, key)
      table.insert(result, created)
      table.insert(result, expires)
      table.insert(result, tostring(size))
    end
  end
end
return result
"""


_TOLD_ONCE_KEPT = 10_000
"""
How many of its own events a database remembers having told its listeners
of, awaiting their second way in (see L{RedisDatabase._tellOwn}).
"""


@functools.cache
def _sha1(script: str) -> str:
    """
    The C{EVALSHA} name of one of this module's scripts, worked out once.
    """
    return hashlib.sha1(script.encode()).hexdigest()


class _BadURL(ValueError):
    """
    A Redis URL refused with a message of txsessions' own, which quotes none
    of it.
    """


@attrs.frozen
class RedisURL:
    """
    Where a Redis server is and how to reach it, from a URL:
    C{redis://[user:password@]host:port/db}, C{rediss://...} (TLS),
    C{unix:///path/to/socket?db=0}, or
    C{redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]}
    (the master of a Sentinel-watched service); C{?prefix=} sets the key
    prefix.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    socket: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    prefix: str = "txsessions:"
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """
        @param url: a Redis URL.
        @return: what it says.
        @raise ValueError: when it is not a Redis URL.
        """
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        prefix = query.get("prefix", ["txsessions:"])[0]
        try:
            if parts.scheme == "unix":
                if not parts.path:
                    raise _BadURL("a unix: Redis URL needs a socket path")
                return cls(
                    socket=parts.path,
                    db=int(query.get("db", ["0"])[0]),
                    password=query.get("password", [None])[0],
                    prefix=prefix,
                )
            if parts.scheme == "redis+sentinel":
                return cls._sentinel(parts, prefix)
            if parts.scheme not in ("redis", "rediss"):
                raise _BadURL("not a redis:, rediss:, unix: or redis+sentinel: URL")
            path = parts.path.strip("/")
            return cls(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 6379,
                db=int(path) if path else 0,
                username=urllib.parse.unquote(parts.username)
                if parts.username
                else None,
                password=urllib.parse.unquote(parts.password)
                if parts.password
                else None,
                tls=parts.scheme == "rediss",
                prefix=prefix,
            )
        except _BadURL as e:
            raise ValueError(f"bad Redis URL: {e}") from None
        except ValueError:
            # urllib's message may quote part of the password.
            raise ValueError(
                "bad Redis URL: check the port, and percent-encode any / @ : # "
                "in the user name or password"
            ) from None

    @classmethod
    def _sentinel(cls, parts: urllib.parse.SplitResult, prefix: str) -> RedisURL:
        credentials, _, hosts = parts.netloc.rpartition("@")
        user, _, password = credentials.partition(":")
        sentinels = []
        for host in hosts.split(","):
            name, _, port = host.partition(":")
            sentinels.append((name or "127.0.0.1", int(port or 26379)))
        service, _, db = parts.path.strip("/").partition("/")
        if not service:
            raise _BadURL("a redis+sentinel: URL names the service: /service[/db]")
        return cls(
            host="",
            port=0,
            db=int(db) if db else 0,
            username=urllib.parse.unquote(user) if user else None,
            password=urllib.parse.unquote(password) if password else None,
            prefix=prefix,
            sentinels=tuple(sentinels),
            service=service,
        )


@implementer(IDatabase)
class RedisDatabase:
    """
    Sessions in Redis.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        clock: IReactorTime | None = None,
        poolsize: int = 1,
        defaultTTL: float = 30 * 24 * 3600,
        staleAfter: float = 30.0,
        connectTimeout: float = 5.0,
    ) -> None:
        """
        @param url: where Redis is (see L{RedisURL}).
        @param clock: the manager's clock, for lifetimes; the global reactor
            when C{None}.
        @param poolsize: how many connections to keep.  One is fastest:
            the commands a turn of the reactor sends share one write, and
            their replies arrive together (with hiredis, which txredisapi
            uses when it is installed, as it is with txsessions).  When that
            one connection drops, the calls under way fail, and new ones wait
            for txredisapi to reconnect, about a second later.
        @param defaultTTL: how long, in seconds after its last write, a
            session without a lifetime stays in Redis.
        @param staleAfter: refuse a write that reaches Redis this many
            seconds after it was sent.
        @param connectTimeout: how long each connection attempt may take.
        @raise ValueError: when C{url} is not a Redis URL.
        """
        import txredisapi

        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self._clock = clock
        self.where = RedisURL.parse(url)
        self._prefix = self.where.prefix
        # What the destroy script cuts off each key: Lua counts bytes.
        self._prefixBytes = str(len(self._prefix.encode()))
        self._channel = self._prefix + "events"
        self._defaultTTL = int(defaultTTL * 1000)
        self._staleAfter = staleAfter
        self._listeners = Listeners()
        options: dict[str, Any] = {
            "dbid": self.where.db,
            "poolsize": poolsize,
            "password": self.where.password,
            "username": self.where.username,
            "convertNumbers": False,
            "connectTimeout": connectTimeout,
        }
        self._redis: Any
        self._sentinel: Any = None
        if self.where.service is not None:
            self._sentinel = txredisapi.Sentinel(list(self.where.sentinels))
            options.pop("connectTimeout")
            self._redis = self._sentinel.master_for(self.where.service, **options)
        elif self.where.socket is not None:
            self._redis = txredisapi.lazyUnixConnectionPool(
                self.where.socket, **options
            )
        else:
            self._redis = txredisapi.lazyConnectionPool(
                self.where.host,
                self.where.port,
                ssl_context_factory=self.where.tls,
                **options,
            )
        # A lazy pool reports a failed connection handshake (a refused AUTH
        # or SELECT, or the pool closed mid-handshake) on this Deferred,
        # which nobody else waits for.
        connected = getattr(self._redis, "_connected", None)
        if isinstance(connected, Deferred):
            connected.addErrback(self._handshakeFailed)
        # Names this database in the events it publishes: it tells its own
        # listeners of them when the first of the script's answer and the
        # echo arrives, and keeps here those told once, until the other.
        self._origin = secrets.token_hex(8)
        self._toldOnce: dict[tuple[str, str], None] = {}
        self._marks: dict[str, Deferred[None]] = {}
        self._markCount = 0
        self._subscriber = _Subscription(self)
        self._closed = False
        # The pool's connected protocols, which txredisapi keeps up to date
        # (none, and every script through the pool, should that change).
        factory = getattr(self._redis, "_factory", None)
        self._connections: list[Any] = getattr(factory, "pool", [])
        self._turn = 0

    # IDatabase

    def load(self, key: str) -> Deferred[StoredSession | None]:
        """
        See L{IDatabase.load}: one C{EVALSHA}, an C{HGETALL} that answers
        in one string.
        """
        now = self._clock.seconds()

        def loaded(reply: str | None) -> StoredSession | None:
            if not reply:
                return None
            try:
                flat = json.loads(reply)
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                lifetime = lifetimeOf(
                    float(fields.pop(CREATED)),
                    float(fields[EXPIRES]) if EXPIRES in fields else None,
                )
            except (KeyError, ValueError, TypeError):
                _log.warn("session {key} is corrupt; ignored", key=redact(key))
                return None
            fields.pop(EXPIRES, None)
            if lifetime.hasExpired(now):
                return None
            return StoredSession(lifetime, fields)

        loading: Deferred[str | None] = self._eval(_LOAD, [self._prefix + key])
        return loading.addCallback(loaded)

    def save(
        self, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        """
        See L{IDatabase.save}: one C{EVALSHA}.
        """
        lifetime = changes.lifetime
        args: list[Any] = [
            "1" if changes.create else "0",
            repr(lifetime.createdAt) if lifetime else "",
            repr(lifetime.expiresAt)
            if lifetime and lifetime.expiresAt is not None
            else "",
            "1" if lifetime else "0",
            "1" if changes.clear else "0",
            repr(self._clock.seconds()),
            str(self._defaultTTL),
            str(int(time.time() + self._staleAfter)),
            str(len(changes.deleted)),
            *changes.deleted,
            str(len(changes.updated)),
            *[x for item in changes.updated.items() for x in item],
            str(len(changes.increments)),
            *[str(x) for item in changes.increments.items() for x in item],
        ]

        def saved(reply: Any) -> Mapping[str, int] | None:
            if not reply:
                return None
            values = reply[1:]
            return {values[i]: int(values[i + 1]) for i in range(0, len(values), 2)}

        saving: Deferred[Any] = self._eval(
            _SAVE, [self._prefix + key], [json.dumps(args, ensure_ascii=False)]
        )
        return saving.addCallback(saved)

    def rename(self, oldKey: str, newKey: str) -> Deferred[bool]:
        """
        See L{IDatabase.rename}: C{RENAMENX} in a script.
        """
        keys = [self._prefix + oldKey, self._prefix + newKey]
        args = [repr(self._clock.seconds()), self._channel, oldKey, self._origin]
        renaming: Deferred[Any] = self._eval(_RENAME, keys, args)

        def renamed(reply: Any) -> bool:
            moved = bool(int(reply))
            if moved:
                self._tellOwn(DestroyReason.regenerated, oldKey)
            return moved

        return renaming.addCallback(renamed)

    def destroy(self, key: str, reason: DestroyReason) -> Deferred[bool]:
        """
        See L{IDatabase.destroy}: C{DEL} and C{PUBLISH} in a script.
        """
        return self._destroy([key], reason).addCallback(bool)

    def destroyAll(self, reason: DestroyReason) -> Deferred[int]:
        """
        See L{IDatabase.destroyAll}: C{SCAN}, then deletion in batches.
        """

        async def destroyAll() -> int:
            removed = 0
            async for batch in self._scan():
                removed += await self._destroy(batch, reason)
            return removed

        return Deferred.fromCoroutine(destroyAll())

    def count(self) -> Deferred[int]:
        """
        See L{IDatabase.count}: C{SCAN}, never C{KEYS}.
        """

        async def count() -> int:
            n = 0
            async for batch in self._scan():
                n += len(batch)
            return n

        return Deferred.fromCoroutine(count())

    def sessions(self, prefix: str = "") -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessions}: C{SCAN}, then one script per batch that
        reads each hash inside Redis and returns its times and size only.
        """
        now = self._clock.seconds()

        async def sessions() -> list[SessionInfo]:
            found: list[SessionInfo] = []
            async for batch in self._scan(prefix):
                full = [self._prefix + key for key in batch]
                reply = await self._eval(_DESCRIBE, full)
                for i in range(0, len(reply), 4):
                    key, created, expires, size = reply[i : i + 4]
                    try:
                        lifetime = lifetimeOf(
                            float(created), float(expires) if expires else None
                        )
                    except ValueError:
                        continue
                    if not lifetime.hasExpired(now):
                        key = key[len(self._prefix) :]
                        found.append(SessionInfo(key, lifetime, int(size)))
            return found

        return Deferred.fromCoroutine(sessions())

    def purgeExpired(self) -> Deferred[int]:
        """
        See L{IDatabase.purgeExpired}: nothing to do, as Redis removes each
        session when its TTL, set to its lifetime, runs out; always 0.
        """
        return succeed(0)

    def listen(self, listener: DestroyListener) -> Callable[[], None]:
        """
        See L{IDatabase.listen}: listeners hear of every destroy and expiry,
        in any process, through Redis pub/sub.
        """
        return self._listeners.add(listener)

    def close(self) -> Deferred[None]:
        """
        See L{IDatabase.close}: disconnect.
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        for waiter in self._marks.values():
            waiter.cancel()
        stopping = [self._subscriber.stop(), self._redis.disconnect()]
        if self._sentinel is not None:
            stopping.append(self._sentinel.disconnect())
        return gatherResults(stopping, consumeErrors=True).addCallback(lambda _: None)

    def eventsDelivered(self) -> Deferred[None]:
        """
        Wait until this process has heard every destroy event published so
        far: those of other processes, and expiries, travel through Redis
        pub/sub (its own destroys are told before they return).  For tests,
        and for code that must see others' events before going on.

        @return: a L{Deferred} firing once a marker published now comes back.
        """
        self._markCount += 1
        mark = f"mark@{self._origin} {self._markCount}"
        waiter: Deferred[None] = Deferred()
        self._marks[mark] = waiter

        def publish(_: object) -> None:
            self._redis.publish(self._channel, mark).addErrback(waiter.errback)

        self._subscriber.subscribed().addCallback(publish)
        return waiter

    # Internals

    def _eval(
        self, script: str, keys: list[str], args: list[Any] | None = None
    ) -> Deferred[Any]:
        """
        Run one of this module's scripts: C{EVALSHA}, or C{EVAL} when Redis
        no longer has it (restarted or flushed).  txredisapi's own C{eval}
        would hash the script again on every call.
        """
        args = args or []
        try:
            running: Deferred[Any] = self._connection().evalsha(
                _sha1(script), keys, args
            )
        except Exception:
            return fail()

        def missing(failure: Any) -> Deferred[Any]:
            import txredisapi

            failure.trap(txredisapi.ScriptDoesNotExist)
            return cast("Deferred[Any]", self._connection().eval(script, keys, args))

        return running.addErrback(missing)

    def _connection(self) -> Any:
        """
        Where the next script goes: the pool's connections in turn, called
        directly, or the pool itself (which waits for a connection) when the
        one whose turn it is is not up.  Going through the pool would cost
        every command an C{inlineCallbacks} wait for a connection, even with
        one at hand.
        """
        connections = self._connections
        if connections:
            self._turn = turn = (self._turn + 1) % len(connections)
            connection = connections[turn]
            if connection.connected:
                return connection
        return self._redis

    def _destroy(self, keys: list[str], reason: DestroyReason) -> Deferred[int]:
        args = [self._channel, reason.value, self._prefixBytes, self._origin]
        full = [self._prefix + key for key in keys]
        destroying: Deferred[Any] = self._eval(_DESTROY, full, args)

        def destroyed(reply: list[str] | None) -> int:
            removed = reply or []
            for key in removed:
                self._tellOwn(reason, key)
            return len(removed)

        return destroying.addCallback(destroyed)

    async def _scan(self, keyPrefix: str = "") -> Any:
        cursor = "0"
        pattern = "".join(
            "\\" + c if c in "[]*?\\" else c for c in self._prefix + keyPrefix
        )
        pattern += "*"
        while True:
            cursor, keys = await self._redis.scan(cursor, pattern, 1000)
            batch = [k[len(self._prefix) :] for k in keys if k != self._channel]
            if batch:
                yield batch
            if str(cursor) == "0":
                return

    def _handshakeFailed(self, failure: Any) -> None:
        if not self._closed:
            _log.warn(
                "connecting to Redis failed: {error}", error=failure.getErrorMessage()
            )

    def _expired(self, redisKey: str) -> None:
        if redisKey.startswith(self._prefix):
            self._listeners.tell(redisKey[len(self._prefix) :], DestroyReason.expired)

    def _published(self, message: str) -> None:
        waiter = self._marks.pop(message, None)
        if waiter is not None:
            waiter.callback(None)
            return
        head, _, key = message.partition(" ")
        # Earlier versions published "reason key", with no origin.
        reason, _, origin = head.partition("@")
        if reason == "mark":
            return
        try:
            destroyReason = DestroyReason(reason)
        except ValueError:
            _log.warn("unknown session event on {channel}", channel=self._channel)
            return
        if origin == self._origin:
            self._tellOwn(destroyReason, key)
        else:
            self._listeners.tell(key, destroyReason)

    def _tellOwn(self, reason: DestroyReason, key: str) -> None:
        """
        Tell the listeners of an event this database published, when the
        first of its two ways here arrives: the script's answer, or the echo
        through the subscription.  Either may never come (a connection lost
        after the script ran, a subscription not in place yet).
        """
        event = (reason.value, key)
        if event in self._toldOnce:
            del self._toldOnce[event]
            return
        if len(self._toldOnce) >= _TOLD_ONCE_KEPT:
            # Echoes that never came (the subscription was down): forget the
            # oldest.
            del self._toldOnce[next(iter(self._toldOnce))]
        self._toldOnce[event] = None
        self._listeners.tell(key, reason)


def _unsubscribed(failure: Any) -> None:
    """
    A subscription was cut off before Redis confirmed it: the connection was
    lost or closed, and the factory subscribes again when it reconnects.
    """
    import txredisapi

    if not failure.check(txredisapi.ConnectionError):
        _log.failure("subscribing to session events failed", failure)


class _Subscription:
    """
    The subscriber connection of one L{RedisDatabase}: it subscribes again
    whenever it reconnects.
    """

    def __init__(self, database: RedisDatabase) -> None:
        import txredisapi

        where = database.where
        channels = [database._channel, f"__keyevent@{where.db}__:expired"]
        self._isSubscribed = False
        self._waiting: list[Deferred[None]] = []

        subscription = self

        class Protocol(txredisapi.SubscriberProtocol):
            def connectionMade(self) -> None:
                super().connectionMade()
                subscribing = self.subscribe(channels)
                subscribing.addCallbacks(lambda _: subscription._ready(), _unsubscribed)

            def connectionLost(self, why: Any) -> None:
                subscription._isSubscribed = False
                super().connectionLost(why)

            def messageReceived(self, pattern: Any, channel: str, message: str) -> None:
                if channel == channels[0]:
                    database._published(message)
                else:
                    database._expired(message)

        factory = txredisapi.SubscriberFactory()
        factory.protocol = Protocol
        factory.password = where.password
        factory.username = where.username
        self._factory = factory
        if database._sentinel is not None:
            factory.sentinel_manager = database._sentinel
            factory.service_name = where.service
            factory.is_master = True
            factory.startConnecting(txredisapi._SentinelEndpoint(factory))
        elif where.socket is not None:
            from twisted.internet import reactor
            from twisted.internet.endpoints import UNIXClientEndpoint

            factory.startConnecting(UNIXClientEndpoint(reactor, where.socket))
        else:
            factory.startConnecting(
                txredisapi._makeEndpoint(where.host, where.port, 5, where.tls or None)
            )
        # Keyspace notifications for expiries; a managed Redis may refuse
        # CONFIG, and then its operator must set notify-keyspace-events Ex.
        configuring = database._redis.execute_command(
            "CONFIG", "SET", "notify-keyspace-events", "Ex"
        )
        configuring.addErrback(
            lambda f: _log.warn(
                "could not set notify-keyspace-events Ex ({error}): expiry events "
                "need it set on the Redis server",
                error=f.getErrorMessage(),
            )
        )

    def subscribed(self) -> Deferred[None]:
        """
        @return: a L{Deferred} firing once the subscription is in place.
        """
        if self._isSubscribed:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def _ready(self) -> None:
        self._isSubscribed = True
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)

    def stop(self) -> Deferred[None]:
        for waiter in self._waiting:
            waiter.cancel()
        return cast("Deferred[None]", self._factory.disconnect())
