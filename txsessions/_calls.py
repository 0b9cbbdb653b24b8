# -*- test-case-name: tests.test_calls -*-
"""
Database calls as the request path makes them: each given its deadline
(C{Config.databaseTimeout}), timed into L{Metrics.latency}, and any failure
counted, logged once and turned into a L{DatabaseError}.

A database that has answered by the time its call returns (memory, LMDB
reads) is read at once: L{DatabaseCalls.now} returns the result itself,
so that the web layer and the request session write the answered-now path
once, here, and pay for no L{Deferred} callbacks on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any, TypeVar, cast

from twisted.internet.defer import CancelledError, Deferred, FirstError, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import DatabaseError
from .metrics import Metrics

_log = Logger()

T = TypeVar("T")


class DatabaseCalls:
    """
    Makes database calls for one manager: deadline, latency, error mapping.
    """

    __slots__ = ("_clock", "_metrics", "timeout")

    def __init__(self, clock: IReactorTime, metrics: Metrics, timeout: float) -> None:
        """
        @param clock: what deadlines are kept on.
        @param metrics: where latencies and failures are counted.
        @param timeout: the deadline of each call in seconds; 0 for none.
        """
        self._clock = clock
        self._metrics = metrics
        self.timeout = timeout

    def call(
        self, d: Deferred[T], kind: str = "other", started: float | None = None
    ) -> Deferred[T]:
        """
        Give a database call its deadline, time it, and make any failure a
        L{DatabaseError} (logged and counted once).  A cancellation (the
        client went away) is passed on as it is: no fault of the database.

        @param d: what the database returned.
        @param kind: C{load}, C{save} or C{other}, for L{Metrics.latency}.
        @param started: when the call was made (C{perf_counter}); now, when
            C{None}.
        @return: a L{Deferred} with C{d}'s result.
        """
        latency = self._metrics.latency[kind]
        begun = perf_counter() if started is None else started

        def timed(result: Any) -> Any:
            latency.add(perf_counter() - begun)
            return result

        d.addBoth(timed)
        # A Deferred that has fired may still wait on another (paused).
        if self.timeout and (not d.called or d.paused):
            d = raceAgainst(d, self.timeout, self._clock)

        def failed(failure: Failure) -> Any:
            if failure.check(CancelledError):
                return failure
            raise self.failed(cast(BaseException, failure.value), kind)

        return d.addErrback(failed)

    def now(self, d: Deferred[T], kind: str, started: float) -> T | Deferred[T]:
        """
        The result of a database call, at once when the database has
        answered (taken without running a callback), or else L{call}'s
        L{Deferred}.  Whoever gets a L{Deferred} must tell it apart from a
        result: no database result is a L{Deferred}.

        @param d: what the database returned.
        @param kind: as for L{call}.
        @param started: when the call was made (C{perf_counter}).
        @raise DatabaseError: when it failed at once.
        @raise CancelledError: when it was cancelled at once.
        """
        if not d.called or d.paused:
            return self.call(d, kind, started)
        self._metrics.latency[kind].add(perf_counter() - started)
        result = d.result
        if isinstance(result, Failure):
            d.addErrback(lambda _: None)
            if result.check(CancelledError):
                result.raiseException()
            raise self.failed(cast(BaseException, result.value), kind)
        return result  # type: ignore[return-value]

    def failed(self, error: BaseException, kind: str) -> DatabaseError:
        """
        Count and log a database failure: the one log entry it gets.

        @param error: what the database raised.
        @param kind: as for L{call}.
        @return: it, as a L{DatabaseError}.
        """
        self._metrics.storeErrors += 1
        _log.error(
            "the session database failed ({kind}): {error}",
            kind=kind,
            error=f"{type(error).__name__}: {error}",
            sessionEvent="storeError",
        )
        if isinstance(error, DatabaseError):
            return error
        message = f"the session database failed: {type(error).__name__}: {error}"
        wrapped = DatabaseError(message)
        wrapped.__cause__ = error
        return wrapped


def answeredAtOnce(database: object, name: str) -> Callable[..., Any] | None:
    """
    The synchronous form of a database method, when the database offers
    one: C{loadAtOnce} for C{load}, C{saveAtOnce} for C{save} (the memory
    database has both).  It takes the same arguments, returns the result
    itself rather than a L{Deferred} firing with it (a load gives the
    lifetime and fields, not a L{StoredSession}), and raises what the
    L{Deferred} would fail with.  Offered only by the class that defines
    C{name} itself, so that a subclass overriding C{load} or C{save} is
    called as it is.

    @param database: a database.
    @param name: C{load} or C{save}.
    @return: the bound synchronous method, or C{None}.
    """
    for klass in type(database).__mro__:
        if name in vars(klass):
            if name + "AtOnce" in vars(klass):
                return cast("Callable[..., Any]", getattr(database, name + "AtOnce"))
            return None
    return None


def isDeferred(value: object) -> bool:
    """
    C{isinstance(value, Deferred)}, without the cost of asking an ABC:
    L{Deferred} is an C{Awaitable}, so C{isinstance} goes through
    C{ABCMeta.__instancecheck__}, on every request.

    @param value: anything.
    @return: whether it is a L{Deferred} (or of a subclass).
    """
    return Deferred in type(value).__mro__


def raceAgainst(d: Deferred[T], timeout: float, clock: IReactorTime) -> Deferred[T]:
    """
    A L{Deferred} with C{d}'s result, or failing with L{DatabaseError} after
    C{timeout} seconds.  C{d} itself is never cancelled: cancelling a
    command a client has already queued (txredisapi) could hand its reply to
    the next command.  A late result is dropped.

    @param d: the call.
    @param timeout: its deadline in seconds.
    @param clock: what the deadline is kept on.
    @return: the raced L{Deferred}.
    """
    raced: Deferred[T] = Deferred()

    def late() -> None:
        raced.errback(
            DatabaseError(f"the session database did not answer in {timeout} s")
        )

    timer = clock.callLater(timeout, late)

    def settled(result: Any) -> None:
        if raced.called:
            return None
        timer.cancel()
        if isinstance(result, Failure):
            raced.errback(result)
        else:
            raced.callback(result)
        return None

    d.addBoth(settled)
    return raced


def allOf(waits: Sequence[Deferred[Any]]) -> Deferred[None]:
    """
    @param waits: L{Deferred}s.
    @return: a L{Deferred} firing once all have, or failing with the first
        failure.
    """
    if len(waits) == 1:
        return waits[0].addCallback(lambda _: None)

    def unwrap(failure: Any) -> Any:
        failure.trap(FirstError)
        return failure.value.subFailure

    return (
        gatherResults(list(waits), consumeErrors=True)
        .addCallback(lambda _: None)
        .addErrback(unwrap)
    )
