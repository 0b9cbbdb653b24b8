"""
The connections of one Redis database: the pool, what is known of its
state, and how a command finds a connection.

A command goes straight to a connected protocol of the pool.  While none is
up, it waits for the first connection of a pool still connecting, but fails
at once, with a L{DatabaseError} saying why and where, once the client knows
it has no connection (the last attempt was refused or failed, or the
connection was lost): a store known to be down answers in no time, rather
than at the manager's deadline.  The pool keeps reconnecting on its own, and
the first connection made ends the outage.  An outage is logged once, as a
warning when it begins and at C{info} when it ends, never per retry.

Each new connection also reads Redis's clock (C{TIME}), so that a write's
deadline can be given in Redis's own time (see L{Connections.redisTime}),
and asks the server for expiry notifications (adding C{E} and C{x} to its
C{notify-keyspace-events}, if they are missing: see L{_keyspace}), which a
restarted server, or a new master, has forgotten.  A server that answers
something other than Redis's protocol is an outage too, told once (see
L{_guard}).

The commands of the request path (L{Connections.send}) are written to a
connection directly, not through txredisapi's C{execute_command} (its
argument framing calls a method and up to three C{isinstance} per
argument; its reply passes through a second L{Deferred} and two
callbacks): sending a save's six arguments and taking its reply cost 19 us
that way in a micro-benchmark here, 6 us with L{_encode} and the reply's
own L{Deferred}.  This relies on three things of txredisapi's
protocol, checked on each connection as it joins the pool (L{_allowsDirect}),
falling back to C{execute_command} when they do not hold: its C{transport}
takes a command's bytes as they are; its C{replyQueue} is a
L{DeferredQueue} whose C{get} returns the L{Deferred} of the next reply,
in the order the commands were written (an error reply as an exception
instance, not raised; a lost connection as a C{ConnectionError}); and a
connection neither pipelining, in a transaction nor with a reply timeout
has nothing else to do per command.
"""

from __future__ import annotations

import time
from typing import Any, cast

from twisted.internet.defer import Deferred, DeferredQueue, fail, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ...errors import DatabaseError
from ._guard import speakingRedis
from ._keyspace import SETTING, askForExpiries
from ._tls import tlsOptions
from ._url import RedisURL

_log = Logger()


def _encode(command: tuple[Any, ...]) -> bytes:
    """
    A command as Redis's protocol (RESP) frames it: an array of bulk
    strings, each argument's text in UTF-8 (bytes as they are).
    """
    framed = [b"*%d\r\n" % len(command)]
    for arg in command:
        framed.append(bulk(arg))
    return b"".join(framed)


def bulk(arg: Any) -> bytes:
    """
    One argument of a command as RESP frames it: a bulk string of its text
    in UTF-8 (bytes as they are).  With the C{*N} line that counts them,
    bulk strings make a command that L{Connections.sendFramed} takes.
    """
    data = arg if type(arg) is bytes else str(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _allowsDirect(connection: Any) -> bool:
    """
    Whether commands can be written to C{connection} directly (see the
    module docstring): it has a transport and a reply queue, no reply
    timeout of txredisapi's own, and is neither pipelining nor in a
    transaction (L{Connections.send} checks these two again each time).
    """
    return (
        isinstance(getattr(connection, "replyQueue", None), DeferredQueue)
        and getattr(connection, "transport", None) is not None
        and not getattr(connection, "replyTimeout", True)
        and getattr(connection, "pipelining", None) is False
        and getattr(connection, "inMulti", None) is False
    )


def endpointFor(where: RedisURL, reactor: Any, timeout: float) -> IStreamClientEndpoint:
    """
    How to reach a Redis server that is not behind Sentinel.

    @param where: the server.
    @param reactor: the reactor to connect with.
    @param timeout: how long, in seconds, a connection attempt may take.
    """
    if where.socket is not None:
        return UNIXClientEndpoint(reactor, where.socket, timeout=timeout)
    endpoint = HostnameEndpoint(reactor, where.host, where.port, timeout=timeout)
    if where.tls:
        return wrapClientTLS(tlsOptions(where), endpoint)
    return endpoint


@implementer(IStreamClientEndpoint)
class _Watched:
    """
    An endpoint that tells its L{Connections} of each failed attempt.
    """

    def __init__(
        self, endpoint: IStreamClientEndpoint, connections: Connections
    ) -> None:
        self._endpoint = endpoint
        self._connections = connections

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        connecting = self._endpoint.connect(protocolFactory)

        def failed(failure: Failure) -> Failure:
            self._connections.attemptFailed(failure)
            return failure

        return connecting.addErrback(failed)


def _watching(base: type, connections: Connections) -> type:
    """
    A subclass of a txredisapi factory class that tells C{connections} when
    a connection joins or leaves the pool.
    """

    class Watching(base):
        protocol = speakingRedis(cast(Any, base).protocol, connections.notRedis)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            connections.factory = self

        def retryDelay(self, attempt: int) -> float:
            # Reconnect at once after a lost connection (Redis closed an
            # idle one, or restarted): calls fail fast meanwhile.
            if attempt <= 1:
                return 0.0
            return cast(float, super().retryDelay(attempt))

        def addConnection(self, conn: Any) -> None:
            super().addConnection(conn)
            if conn in self.pool:
                connections.connected(conn)

        def delConnection(self, conn: Any) -> None:
            super().delConnection(conn)
            connections.left(conn)
            if not self.pool:
                connections.disconnected()

        def stopTrying(self) -> Any:
            return keepTrying()

        def connectionError(self, why: str) -> None:
            # A refused set-up (AUTH, SELECT), each time: the factory's own
            # Deferred tells only the first.
            connections.handshakeFailed(why)
            super().connectionError(why)

    return Watching


def keepTrying() -> Deferred[None]:
    """
    What a txsessions factory does when txredisapi asks it to stop
    reconnecting: nothing.  txredisapi asks when Redis refuses a
    connection's set-up (C{AUTH} or C{SELECT}), which may be for a moment
    (C{maxclients} reached, a replica not yet promoted, a password being
    changed): the pool and the subscriber keep retrying, with their
    back-off, and a request meanwhile gets its 503 at once, saying why.
    (txredisapi's C{quit} and C{shutdown} ask too; txsessions sends
    neither, and a database's C{close} disconnects, which does stop.)
    """
    return succeed(None)


class Connections:
    """
    The command connections of one Redis database.

    @ivar sentinel: the txredisapi Sentinel, when the URL names one.
    @ivar factory: the pool's txredisapi factory.
    @ivar down: why the client knows it has no connection, or C{None} when
        it has one or is still making its first.
    """

    def __init__(
        self, where: RedisURL, reactor: Any, poolsize: int, connectTimeout: float
    ) -> None:
        """
        @param where: the server.
        @param reactor: the reactor to connect with.
        @param poolsize: how many connections to keep.
        @param connectTimeout: how long each connection attempt may take.
        """
        import txredisapi

        self._where = where
        self.down: str | None = None
        self._warned = False
        self._expiryWarned = False
        self._explained = 0
        self._closed = False
        self._waiting: list[Deferred[Any]] = []
        self._turn = 0
        self._offset = 0.0
        self._direct: set[Any] = set()
        options: dict[str, Any] = {
            "dbid": where.db,
            "poolsize": poolsize,
            "password": where.password,
            "username": where.username,
            "convertNumbers": False,
        }
        self.sentinel: Any = None
        self.factory: Any = None
        if where.service is not None:
            self.sentinel = txredisapi.Sentinel(list(where.sentinels))
            factoryClass = _watching(txredisapi.SentinelConnectionFactory, self)
            self.pool: Any = self.sentinel.master_for(
                where.service, factory_class=factoryClass, **options
            )
        else:
            made = _watching(txredisapi.RedisFactory, self)(
                where.address, isLazy=True, **options
            )
            endpoint = endpointFor(where, reactor, connectTimeout)
            made.startConnecting(_Watched(endpoint, self))
            self.pool = made.handler
        factory: Any = self.factory
        self._connections: list[Any] = factory.pool
        # A lazy pool also fails this Deferred at its first refused set-up,
        # which handshakeFailed has already been told of (each time).
        factory.deferred.addErrback(lambda _: None)

    def connection(self) -> Any:
        """
        A connection to send a command on: the pool's connections in turn,
        called directly (going through the pool would cost every command an
        C{inlineCallbacks} wait, even with a connection at hand); or a
        L{Deferred} firing with the first one made, while the pool is still
        connecting.

        @raise DatabaseError: when the client knows it has no connection.
        """
        connections = self._connections
        for _ in connections:
            self._turn = turn = (self._turn + 1) % len(connections)
            connection = connections[turn]
            if connection.connected:
                return connection
        if self.down is not None:
            raise DatabaseError(self.down)
        if self.sentinel is not None:
            # Sentinel finds the master itself: its pool waits for it.
            return self.pool
        waiter: Deferred[Any] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def call(self, method: str, *args: Any) -> Deferred[Any]:
        """
        Send one command on L{connection}.

        @param method: the name of the txredisapi method sending it.
        @param args: its arguments.
        @return: a L{Deferred} firing with its answer, or failing with a
            L{DatabaseError} at once when the client knows it has no
            connection.
        """
        try:
            connection = self.connection()
        except DatabaseError:
            return fail()
        if isinstance(connection, Deferred):
            return connection.addCallback(lambda made: getattr(made, method)(*args))
        return cast("Deferred[Any]", getattr(connection, method)(*args))

    def execute(self, *command: Any) -> Deferred[Any]:
        """
        Send one command, given as C{execute_command} takes it, on
        L{connection}; see L{send}.

        @param command: the command's name and arguments.
        @return: as for L{call}.
        """
        return self.send(*command).addCallback(_raised)

    def send(self, *command: Any) -> Deferred[Any]:
        """
        Send one command on L{connection}, written to it directly when it
        allows (see the module docstring).

        @param command: the command's name and arguments: text, bytes or
            integers.
        @return: a L{Deferred} firing with its reply, an error reply as the
            exception txredisapi makes of it (C{ResponseError}), not
            raised; or failing with a L{DatabaseError} at once when the
            client knows it has no connection.
        """
        return self.sendFramed(_encode(command), command)

    def sendFramed(self, framed: bytes, command: tuple[Any, ...]) -> Deferred[Any]:
        """
        L{send}, for a command already framed: what the request path's
        commands use, their constant parts framed once (L{bulk}).

        @param framed: C{command} as RESP frames it (L{_encode}), written
            as it is to a connection that allows it.
        @param command: the command's name and arguments, for a connection
            that does not.
        @return: as for L{send}.
        """
        try:
            connection = self.connection()
        except DatabaseError:
            return fail()
        if connection in self._direct and not (
            connection.pipelining or connection.inMulti
        ):
            connection.transport.write(framed)
            # Not typing.cast: a function call, on every command.
            reply: Deferred[Any] = connection.replyQueue.get()
            return reply
        if isinstance(connection, Deferred):
            return connection.addCallback(_sent, command)
        return _sent(connection, command)

    def redisTime(self, seconds: float) -> float:
        """
        A time in Redis's clock: C{seconds} from now, as this process's clock
        says, and Redis's is ahead of it by what the last connection made
        measured (to within its round trip).
        """
        return time.time() + self._offset + seconds

    def close(self) -> Deferred[Any]:
        """
        Disconnect, for good; commands waiting for a connection fail.
        """
        self._closed = True
        self._failWaiting("the session database was closed")
        return cast("Deferred[Any]", self.pool.disconnect())

    # Told by the factory and the endpoint.

    def connected(self, connection: Any) -> None:
        """
        A connection joined the pool: the outage, if any, is over.
        """
        if self.down is not None and self._warned:
            _log.info(
                "the session database at {where} is reachable again",
                where=self._where.address,
            )
        self.down = None
        self._warned = False
        self._explained = 0
        if _allowsDirect(connection):
            self._direct.add(connection)
        _noDelay(connection)
        self._configureExpiryEvents(connection)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(connection)
        self._measureClock(connection)

    def left(self, connection: Any) -> None:
        """
        A connection left the pool.
        """
        self._direct.discard(connection)

    def disconnected(self) -> None:
        """
        The last connection of the pool was lost.
        """
        if not self._closed:
            self.down = f"lost the connection to Redis at {self._where.address}"

    def attemptFailed(self, failure: Failure) -> None:
        """
        A connection attempt failed.
        """
        if self._closed or self._connections:
            return
        where = self._where.address
        if failure.check(ConnectionRefusedError):
            self.down = f"the connection to Redis at {where} was refused"
        else:
            why = failure.getErrorMessage()
            self.down = f"could not connect to Redis at {where}: {why}"
        self._outage()

    def handshakeFailed(self, why: str) -> None:
        """
        Redis accepted a connection but refused its set-up (C{AUTH} or
        C{SELECT}): the pool tries again, with its back-off.

        @param why: txredisapi's message, with Redis's answer (never the
            password).
        """
        if self._explained:
            # The set-up of a connection L{notRedis} dropped: it said why.
            self._explained -= 1
            return
        if self._closed or self._connections:
            return
        where = self._where.address
        self.down = f"Redis at {where} refused the connection's set-up: {why}"
        self._outage()

    def notRedis(self, connection: Any) -> None:
        """
        The server a connection reached answered something other than
        Redis's protocol (a wrong port, an HTTP server), and the connection
        is dropped: the pool tries again, with its back-off.

        @param connection: the txredisapi protocol of that connection, or of
            the subscriber's.
        """
        if connection in self._connections:
            return
        if connection.factory is self.factory:
            # Its set-up (SELECT) fails as it is dropped, which txredisapi
            # reports too (handshakeFailed): this says why.
            self._explained += 1
        if self._closed or self._connections:
            return
        where = self._where.address
        self.down = f"the server at {where} does not speak the Redis protocol"
        self._outage()

    # Internals

    def _outage(self) -> None:
        """
        The client knows it has no connection: warn, once per outage, and
        fail the commands waiting for one.
        """
        assert self.down is not None
        if not self._warned:
            self._warned = True
            _log.warn(
                "the session database is unreachable: {why}; requests get a 503 "
                "at once until it is back (retrying)",
                why=self.down,
            )
        self._failWaiting(self.down)

    def _failWaiting(self, why: str) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.errback(DatabaseError(why))

    def _configureExpiryEvents(self, connection: Any) -> None:
        """
        Ask the server a new connection reached for keyspace notifications
        of expiries (L{askForExpiries}): a restarted Redis, or the new
        master after a failover, has only its own configuration.  A managed
        Redis may refuse C{CONFIG}, and then its operator must set
        C{notify-keyspace-events Ex}: said once, until a server takes it
        again.
        """

        def configured(_: object) -> None:
            self._expiryWarned = False

        def refused(failure: Failure) -> None:
            if self._closed or self._expiryWarned:
                return
            self._expiryWarned = True
            _log.warn(
                "could not set {setting} Ex ({error}): expiry events "
                "need it set on the Redis server",
                setting=SETTING,
                error=failure.getErrorMessage(),
            )

        configuring = Deferred.fromCoroutine(askForExpiries(connection))
        configuring.addCallbacks(configured, refused)

    def _measureClock(self, connection: Any) -> None:
        """
        Read Redis's clock on a new connection, to give deadlines in it.
        """
        sent = time.time()

        def measured(reply: Any) -> None:
            now = time.time()
            seconds, micros = reply
            self._offset = int(seconds) + int(micros) / 1e6 - (sent + now) / 2

        connection.execute_command("TIME").addCallbacks(measured, lambda _: None)


def _noDelay(connection: Any) -> None:
    """
    Send each command as soon as it is written (C{TCP_NODELAY}), as redis-py
    and hiredis do, rather than holding it back while the last one is
    unacknowledged (Nagle's algorithm): a request's save follows its load
    within one reply's time.  Nothing to do over a UNIX socket.
    """
    setNoDelay = getattr(connection.transport, "setTcpNoDelay", None)
    if setNoDelay is not None:
        try:
            setNoDelay(True)
        except OSError:
            pass


def _sent(connection: Any, command: tuple[Any, ...]) -> Deferred[Any]:
    """
    Send C{command} through txredisapi's C{execute_command}, its error reply
    given as L{Connections.send} gives it.
    """
    sending = connection.execute_command(*command)
    return cast("Deferred[Any]", sending.addErrback(_errorReply))


def _errorReply(failure: Failure) -> Any:
    """
    An error reply, as L{Connections.send} gives it: the exception itself.
    """
    import txredisapi

    if failure.check(txredisapi.ResponseError):
        return failure.value
    return failure


def _raised(reply: Any) -> Any:
    """
    A reply, or its error raised.
    """
    if isinstance(reply, Exception):
        raise reply
    return reply
