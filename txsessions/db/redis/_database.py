"""
L{RedisDatabase}: sessions in Redis, over txredisapi.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from zope.interface import implementer

from ..._fields import LoadedParts
from ...interfaces import DestroyListener, IDatabase
from ...records import (
    OWNER_FIELD,
    DestroyReason,
    SessionChanges,
    SessionInfo,
    StoredSession,
)
from .._persistent import lifetimeOf
from . import _scripts as scripts
from ._connection import Connections, bulk, endpointFor
from ._events import Events
from ._extra import requireModules
from ._subscription import Subscription
from ._tls import tlsOptions
from ._url import RedisURL
from ._wire import (
    evalshaHead,
    partsArguments,
    saveArguments,
    savedReply,
    sessionParts,
    storedSession,
)

_NO_DEADLINE = 365 * 24 * 3600.0
"""
The deadline that stands for none: a year, which no call waits.
"""


@implementer(IDatabase)
class RedisDatabase:
    """
    Sessions in Redis.

    @ivar where: the server, as its URL says.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        clock: IReactorTime | None = None,
        poolsize: int = 1,
        defaultTTL: float = 30 * 24 * 3600,
        deadline: float = 3.0,
        connectTimeout: float = 5.0,
        reactor: Any = None,
    ) -> None:
        """
        @param url: where Redis is (see L{RedisURL}).
        @param clock: the manager's clock, for lifetimes; the global reactor
            when C{None}.
        @param poolsize: how many connections to keep.  One is fastest:
            the commands a turn of the reactor sends share one write, and
            their replies arrive together (with hiredis, which txredisapi
            uses when it is installed, as it is with txsessions).  When that
            one connection drops, the calls under way fail, and new ones fail
            at once until txredisapi has reconnected, about a second later.
        @param defaultTTL: how long, in seconds after its last write, a
            session without a lifetime stays in Redis.
        @param deadline: the manager's deadline for each call, in seconds:
            give it L{Config.databaseTimeout <txsessions.Config>} (whose
            default this is).  A save or rename that reaches Redis later
            than this after it was sent, less a margin for its answer's way
            back (a quarter of it, at most a second), is refused and has no
            effect, so that a write whose request was answered 503 never
            lands.
        @param connectTimeout: how long each connection attempt may take,
            for the command connections and the subscriber alike.
        @param reactor: the reactor to connect with; the global reactor
            when C{None}.
        @raise ValueError: when C{url} is not a Redis URL.
        @raise ImportError: when the C{redis} extra is not installed (a
            C{ModuleNotFoundError}, whose message gives the C{pip install}
            line).
        """
        if reactor is None:
            from twisted.internet import reactor
        if clock is None:
            clock = cast(IReactorTime, reactor)
        self._clock = clock
        self.where = RedisURL.parse(url)
        requireModules(self.where)
        if self.where.tls:
            tlsOptions(self.where)  # a bad ssl_ca_certs is told now
        self._prefix = self.where.prefix
        # What the destroy script cuts off each key: Lua counts bytes.
        self._prefixBytes = str(len(self._prefix.encode()))
        self._owners = scripts.OWNERS + self._prefix
        # The parts of the load and save commands that never change, framed
        # once: each call frames only its key and its changes.
        self._loadHead = b"*4\r\n" + evalshaHead(scripts.LOAD)
        self._saveHead = b"*6\r\n" + evalshaHead(scripts.SAVE)
        self._loadSHA = scripts.sha1(scripts.LOAD)
        self._saveSHA = scripts.sha1(scripts.SAVE)
        self._ownersBulk = bulk(self._owners)
        self._ttlText = str(int(defaultTTL * 1000))
        self.useDeadline(deadline)
        self._events = Events(self._prefix, self.where.db)
        self._redis = Connections(self.where, reactor, poolsize, connectTimeout)

        def subscriberEndpoint(factory: Any) -> IStreamClientEndpoint:
            return self._subscriberEndpoint(factory, reactor, connectTimeout)

        self._subscriber = Subscription(
            self._events,
            self.where.db,
            subscriberEndpoint,
            (self.where.username, self.where.password),
            self._redis.notRedis,
        )
        self._closed = False

    # IDatabase

    def load(self, key: str) -> Deferred[StoredSession | None]:
        """
        See L{IDatabase.load}: one C{EVALSHA}, an C{HGETALL} that answers
        in one string.
        """
        return self._load(key, storedSession)

    def loadParts(self, key: str) -> Deferred[LoadedParts | None]:
        """
        L{load}, answered with the parts of the session rather than a
        L{StoredSession}: what the request path calls in its place, building
        no record.

        @param key: a store key.
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing
            with when the session was created and expires (the fields of its
            L{Lifetime <txsessions.records.Lifetime>}) and its fields, or
            C{None} when no live, readable session has that key.
        """
        return self._load(key, sessionParts)

    def _load(self, key: str, then: Callable[[Any, str, float], Any]) -> Deferred[Any]:
        """
        Run the C{LOAD} script for C{key}, its reply given to C{then} with
        the key and the time the load began.
        """
        full = self._prefix + key
        loading = self._redis.sendFramed(
            self._loadHead + bulk(full), ("EVALSHA", self._loadSHA, 1, full)
        )
        return loading.addCallback(self._loaded, then, key, self._clock.seconds())

    def _loaded(
        self, reply: Any, then: Callable[[Any, str, float], Any], key: str, now: float
    ) -> Any:
        """
        What C{then} makes of a C{LOAD} script's reply (see L{_replied}).
        """
        if isinstance(reply, Exception):
            full = [self._prefix + key]
            return self._replied(reply, scripts.LOAD, full, (), then, (key, now))
        return then(reply, key, now)

    def save(
        self, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        """
        See L{IDatabase.save}: one C{EVALSHA}.
        """
        encoded = saveArguments(
            changes,
            self._clock.seconds(),
            self._ttlText,
            self._redis.redisTime(self._writeWithin),
        )
        return self._save(key, encoded, changes.increments)

    def saveParts(
        self,
        key: str,
        create: bool,
        times: tuple[float, float | None] | None,
        clear: bool,
        deleted: Collection[str],
        updated: Mapping[str, str],
        increments: Mapping[str, int],
    ) -> Deferred[Mapping[str, int] | None]:
        """
        L{save}, given the fields of the L{SessionChanges} in order (its
        lifetime as when the session was created and expires): what the
        request path calls in its place (see
        L{txsessions._calls.saveInParts}), with no record built to be read
        back here.
        """
        encoded = partsArguments(
            self._clock.seconds(),
            self._ttlText,
            self._redis.redisTime(self._writeWithin),
            create,
            times,
            clear,
            deleted,
            updated,
            increments,
        )
        return self._save(key, encoded, increments)

    def _save(
        self, key: str, encoded: str, increments: Collection[str]
    ) -> Deferred[Mapping[str, int] | None]:
        """
        Send a C{SAVE} with its arguments (L{saveArguments}), which
        increment C{increments}.
        """
        full = self._prefix + key
        saving = self._redis.sendFramed(
            self._saveHead + bulk(full) + bulk(encoded) + self._ownersBulk,
            ("EVALSHA", self._saveSHA, 1, full, encoded, self._owners),
        )
        return saving.addCallback(self._saved, full, encoded, increments)

    def _saved(
        self, reply: Any, full: str, encoded: str, increments: Collection[str]
    ) -> Any:
        """
        What a C{SAVE} script's reply says (L{savedReply}); the script sent
        whole when Redis answered C{NOSCRIPT} to its hash.
        """
        if isinstance(reply, Exception) and str(reply).startswith("NOSCRIPT"):
            command = ("EVAL", scripts.SAVE, 1, full, encoded, self._owners)
            return self._redis.send(*command).addCallback(savedReply, increments)
        return savedReply(reply, increments)

    def rename(self, oldKey: str, newKey: str) -> Deferred[bool]:
        """
        See L{IDatabase.rename}: C{RENAMENX} in a script.
        """
        keys = [self._prefix + oldKey, self._prefix + newKey]
        events = self._events
        args = [
            repr(self._clock.seconds()),
            events.channel,
            oldKey,
            events.origin,
            f"{self._redis.redisTime(self._writeWithin):.6f}",
            self._owners,
        ]
        renaming: Deferred[Any] = self._eval(scripts.RENAME, keys, args)

        def renamed(reply: Any) -> bool:
            moved = bool(int(reply))
            if moved:
                events.tellOwn(DestroyReason.regenerated, oldKey)
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
        See L{IDatabase.count}: C{SCAN}, never C{KEYS}, and a script per
        batch that counts the hashes (a key under the prefix that is no
        hash is no session).
        """

        async def count() -> int:
            n = 0
            async for batch in self._scan():
                full = [self._prefix + key for key in batch]
                n += int(await self._eval(scripts.SESSIONS, full))
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
                reply = await self._eval(scripts.DESCRIBE, full)
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

    def sessionsOf(self, owner: str) -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessionsOf}: one script over the owner's set, which
        also prunes it of sessions Redis expired by TTL.
        """
        now = self._clock.seconds()

        def described(reply: list[str] | None) -> list[SessionInfo]:
            found: list[SessionInfo] = []
            reply = reply or []
            for i in range(0, len(reply), 5):
                key, created, expires, size, mark = reply[i : i + 5]
                try:
                    lifetime = lifetimeOf(
                        float(created), float(expires) if expires else None
                    )
                except ValueError:
                    continue
                info = SessionInfo.ofFields(
                    key[len(self._prefix) :], lifetime, {OWNER_FIELD: mark}
                )
                found.append(attrs.evolve(info, size=int(size)))
            return found

        looking: Deferred[Any] = self._eval(
            scripts.OWNED, [self._owners + owner], [owner, repr(now)]
        )
        return looking.addCallback(described)

    def purgeExpired(self) -> Deferred[int]:
        """
        See L{IDatabase.purgeExpired}: nothing to do, as Redis removes each
        session when its TTL, set to its lifetime, runs out; always 0.
        """
        return succeed(0)

    def useDeadline(self, deadline: float) -> None:
        """
        Give each write from now on the manager's deadline: the scripts
        refuse one that reaches Redis after it, less a margin for the
        answer's way back (a quarter, at most a second).
        L{txsessions.Sessions} calls this with its C{Config.databaseTimeout}.

        @param deadline: seconds from each call (0: no deadline).
        """
        deadline = deadline or _NO_DEADLINE
        self._writeWithin = deadline - min(deadline / 4, 1.0)

    def listen(self, listener: DestroyListener) -> Callable[[], None]:
        """
        See L{IDatabase.listen}: listeners hear of every destroy and expiry,
        in any process, through Redis pub/sub.
        """
        return self._events.listen(listener)

    def close(self) -> Deferred[None]:
        """
        See L{IDatabase.close}: disconnect.
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        self._events.cancelMarks()
        stopping = [self._subscriber.stop(), self._redis.close()]
        if self._redis.sentinel is not None:
            stopping.append(self._redis.sentinel.disconnect())
        return gatherResults(stopping, consumeErrors=True).addCallback(lambda _: None)

    def eventsDelivered(self) -> Deferred[None]:
        """
        Wait until this process has heard every destroy event published so
        far: those of other processes, and expiries, travel through Redis
        pub/sub (its own destroys are told before they return).  For tests,
        and for code that must see others' events before going on.

        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing once a marker
            published now comes back.
        """
        mark, waiter = self._events.mark()

        def publish(_: object) -> None:
            publishing = self._redis.call("publish", self._events.channel, mark)
            publishing.addErrback(waiter.errback)

        self._subscriber.subscribed().addCallback(publish)
        return waiter

    # Internals

    def _subscriberEndpoint(
        self, factory: Any, reactor: Any, timeout: float
    ) -> IStreamClientEndpoint:
        import txredisapi

        sentinel = self._redis.sentinel
        if sentinel is None:
            return endpointFor(self.where, reactor, timeout)
        factory.sentinel_manager = sentinel
        factory.service_name = self.where.service
        factory.is_master = True
        return cast(IStreamClientEndpoint, txredisapi._SentinelEndpoint(factory))

    def _eval(
        self,
        script: str,
        keys: list[str],
        args: Sequence[Any] = (),
        framed: bytes | None = None,
        then: Callable[..., Any] | None = None,
        *thenArgs: Any,
    ) -> Deferred[Any]:
        """
        Run one of the scripts: C{EVALSHA}, or C{EVAL} when Redis no longer
        has it (restarted or flushed).  Sent with L{Connections.sendFramed},
        not txredisapi's C{evalsha} and C{eval}: these hash the script again
        on every call, and wrap each reply in callbacks of their own.

        @param framed: the C{EVALSHA} command as RESP frames it, if the
            caller framed it (L{bulk}); else it is framed here.
        @param then: what to make of the reply, called with it and
            C{thenArgs} in the reply's own callback (one callback a call,
            not two): the reply as it is when C{None}.
        """
        command = ("EVALSHA", scripts.sha1(script), len(keys), *keys, *args)
        if framed is None:
            running = self._redis.send(*command)
        else:
            running = self._redis.sendFramed(framed, command)
        return running.addCallback(self._replied, script, keys, args, then, thenArgs)

    def _replied(
        self,
        reply: Any,
        script: str,
        keys: list[str],
        args: Sequence[Any],
        then: Callable[..., Any] | None,
        thenArgs: tuple[Any, ...],
    ) -> Any:
        """
        What C{then} makes of a script's reply, or its error raised; the
        script sent whole when Redis answered C{NOSCRIPT} to its hash.
        """
        if isinstance(reply, Exception):
            if str(reply).startswith("NOSCRIPT"):
                running = self._redis.execute("EVAL", script, len(keys), *keys, *args)
                if then is None:
                    return running
                return running.addCallback(then, *thenArgs)
            raise reply
        if then is None:
            return reply
        return then(reply, *thenArgs)

    def _destroy(self, keys: list[str], reason: DestroyReason) -> Deferred[int]:
        events = self._events
        args = [
            events.channel,
            reason.value,
            self._prefixBytes,
            events.origin,
            self._owners,
        ]
        full = [self._prefix + key for key in keys]
        destroying: Deferred[Any] = self._eval(scripts.DESTROY, full, args)

        def destroyed(reply: list[str] | None) -> int:
            removed = reply or []
            for key in removed:
                events.tellOwn(reason, key)
            return len(removed)

        return destroying.addCallback(destroyed)

    async def _scan(self, keyPrefix: str = "") -> Any:
        cursor = "0"
        pattern = "".join(
            "\\" + c if c in "[]*?\\" else c for c in self._prefix + keyPrefix
        )
        pattern += "*"
        while True:
            cursor, keys = await self._redis.call("scan", cursor, pattern, 1000)
            batch = [k[len(self._prefix) :] for k in keys]
            if batch:
                yield batch
            if str(cursor) == "0":
                return
