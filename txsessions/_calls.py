# -*- test-case-name: tests.test_calls -*-
"""
Database calls as the request path makes them: each given its deadline
(C{Config.databaseTimeout}), timed into L{Metrics.latency}, and any failure
counted, logged once and turned into a L{DatabaseError}.  The deadlines of
the calls under way share one timer (L{Deadlines}).

A database that has answered by the time its call returns (memory, LMDB
reads) is read at once: L{DatabaseCalls.now} returns the result itself,
so that the web layer and the request session write the answered-now path
once, here, and pay for no L{Deferred} callbacks on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    FirstError,
    fail,
    gatherResults,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .errors import CounterRangeError, DatabaseError, SessionLimitError
from .metrics import Metrics

if TYPE_CHECKING:
    from typing_extensions import TypeIs

_log = Logger()

T = TypeVar("T")


class DatabaseCalls:
    """
    Makes database calls for one manager: deadline, latency, error mapping.
    """

    __slots__ = ("_metrics", "_deadlines", "timeout")

    def __init__(self, clock: IReactorTime, metrics: Metrics, timeout: float) -> None:
        """
        @param clock: what deadlines are kept on.
        @param metrics: where latencies and failures are counted.
        @param timeout: the deadline of each call in seconds; 0 for none.
        """
        self._metrics = metrics
        self._deadlines = Deadlines(clock, timeout, self.failed) if timeout else None
        self.timeout = timeout

    def run(
        self, method: Callable[..., Deferred[T]], *args: Any, kind: str = "other"
    ) -> Deferred[Any]:
        """
        L{call} of C{method(*args)}, a database method: one that raises,
        rather than failing the L{Deferred} it returns, fails the same way.

        @param kind: as for L{call}.
        """
        try:
            d = method(*args)
        except Exception:
            d = fail()
        return self.call(d, kind)

    def call(
        self,
        d: Deferred[T],
        kind: str = "other",
        started: float | None = None,
        then: Callable[..., Any] | None = None,
        *args: Any,
    ) -> Deferred[Any]:
        """
        Give a database call its deadline, time it, and make any failure a
        L{DatabaseError} (logged and counted once).  A cancellation (the
        client went away) is passed on as it is: no fault of the database.

        @param d: what the database returned.
        @param kind: C{load}, C{save} or C{other}, for L{Metrics.latency}.
        @param started: when the call was made (C{perf_counter}); now, when
            C{None}.
        @param then: what to call with the answer (the result, or the
            L{Failure} of its L{DatabaseError}) and C{args}, in the same
            callback: each callback of a L{Deferred} costs as much as the
            rest of this, on every request a remote database serves.
        @return: C{d}, given the callback that does this.  At the deadline,
            if it has not fired, C{d} is cancelled (as L{Deferred.addTimeout}
            does: the database's canceller, if it has one, may give up the
            call, and a late result is dropped) and fails with
            L{DatabaseError}.
        """
        begun = perf_counter() if started is None else started
        deadlines = self._deadlines
        # A Deferred that has fired may still wait on another (paused).
        if deadlines is None or (d.called and not d.paused):
            return d.addBoth(self._settled, kind, begun, None, then, args)
        entry = deadlines.add(d, kind)
        return d.addBoth(self._settled, kind, begun, entry, then, args)

    def _settled(
        self,
        result: Any,
        kind: str,
        begun: float,
        entry: list[Any] | None,
        then: Callable[..., Any] | None,
        args: tuple[Any, ...],
    ) -> Any:
        """
        A call answered, or was cancelled (by its deadline, or by its
        caller): time it and map its failure; when its deadline (C{entry},
        if it has one) came first, fail with the L{DatabaseError} that
        L{Deadlines} made.  Then hand the answer to C{then}, if given.
        """
        self._metrics.latency[kind].add(perf_counter() - begun)
        if entry is not None and entry[1] is None:
            # The deadline came first and cancelled the call.
            result = Failure(entry[2])
        else:
            if entry is not None:
                self._deadlines.settled(entry)  # type: ignore[union-attr]
            if isinstance(result, Failure) and not result.check(CancelledError):
                result = Failure(self.failed(cast(BaseException, result.value), kind))
        return result if then is None else then(result, *args)

    def now(
        self,
        d: Deferred[T],
        kind: str,
        started: float,
        then: Callable[..., Any] | None = None,
        *args: Any,
    ) -> T | Deferred[Any]:
        """
        The result of a database call, at once when the database has
        answered (taken without running a callback), or else L{call}'s
        L{Deferred}.  Whoever gets a L{Deferred} must tell it apart from a
        result: no database result is a L{Deferred}.

        @param d: what the database returned.
        @param kind: as for L{call}.
        @param started: when the call was made (C{perf_counter}).
        @param then: as for L{call}, when the database has yet to answer;
            not called for an answer given at once.
        @raise DatabaseError: when it failed at once.
        @raise CancelledError: when it was cancelled at once.
        """
        if not d.called or d.paused:
            return self.call(d, kind, started, then, *args)
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
        Count and log a database failure: the one log entry it gets.  A
        database that is full (L{SessionLimitError}) is counted in
        L{Metrics.refusedFull} and logged as a warning, and a refused
        increment (L{CounterRangeError}) is only logged as one: neither is an
        outage, counted in L{Metrics.storeErrors}.

        @param error: what the database raised.
        @param kind: as for L{call}.
        @return: it, as a L{DatabaseError}.
        """
        if isinstance(error, CounterRangeError):  # the data's, not an outage
            _log.warn("a save was refused ({kind}): {error}", kind=kind, error=error)
            return error
        if isinstance(error, SessionLimitError):  # --max-sessions: not an outage
            self._metrics.refusedFull += 1
            _log.warn(
                "a new session was refused, the database is full ({kind}): {error}",
                kind=kind,
                error=error,
                sessionEvent="refusedFull",
            )
            return error
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


class Deadlines:
    """
    The deadlines of the calls under way, kept with one timer for them all
    rather than a C{callLater} and a C{cancel} per call.

    Every call is given the same timeout, so the calls' deadlines come in
    the order the calls were made: they wait in a queue, and the one timer
    is set for the first deadline of a call still waiting.  A call that
    answers only marks its place in the queue; the timer is cancelled when
    no call is waiting.  When it fires, each call whose deadline has come
    is cancelled, to fail with L{DatabaseError}, and the timer is set for
    the next.
    """

    __slots__ = (
        "_clock",
        "_timeout",
        "_failed",
        "_queue",
        "_waiting",
        "_timer",
        "_message",
    )

    def __init__(
        self,
        clock: IReactorTime,
        timeout: float,
        failed: Callable[[BaseException, str], DatabaseError],
    ) -> None:
        """
        @param clock: what the deadlines are kept on.
        @param timeout: how long each call may take, in seconds (more than 0).
        @param failed: what makes the error a late call fails with, given
            the L{DatabaseError} and the call's kind (L{DatabaseCalls.failed},
            which logs and counts it).
        """
        self._clock = clock
        self._failed = failed
        self._timeout = timeout
        self._queue: deque[list[Any]] = deque()
        self._waiting = 0
        self._timer: IDelayedCall | None = None
        self._message = f"the session database did not answer in {timeout} s"

    def add(self, call: Deferred[Any], kind: str) -> list[Any]:
        """
        Cancel C{call} when the deadline comes, unless L{settled} was told
        by then.

        @param call: what the database returned.
        @param kind: the call's kind, for the failure.
        @return: its place in the queue, to give L{settled}: its deadline,
            C{call} and C{kind}.  When the deadline comes, C{call} becomes
            C{None} and C{kind} the L{DatabaseError} it is to fail with,
            before C{call} is cancelled; C{call} becomes C{None} too once
            L{settled} is told.
        """
        entry = [self._clock.seconds() + self._timeout, call, kind]
        self._queue.append(entry)
        self._waiting += 1
        if self._timer is None:
            self._timer = self._clock.callLater(self._timeout, self._due)
        return entry

    def settled(self, entry: list[Any]) -> None:
        """
        The call C{entry} stands for answered: it has no deadline any more.

        @param entry: what L{add} returned.
        """
        entry[1] = None
        self._waiting -= 1
        queue = self._queue
        if not self._waiting:
            queue.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        # Calls mostly answer in the order they were made: keep the queue
        # as short as the calls under way.
        while queue[0][1] is None:
            queue.popleft()

    def _due(self) -> None:
        """
        The first deadline came: cancel each call whose deadline has, and
        wait for the next.
        """
        self._timer = None
        queue = self._queue
        now = self._clock.seconds()
        late: list[Deferred[Any]] = []
        while queue and (queue[0][1] is None or queue[0][0] <= now):
            entry = queue.popleft()
            call = entry[1]
            if call is not None:
                late.append(call)
                entry[1] = None
                entry[2] = self._failed(DatabaseError(self._message), entry[2])
        self._waiting -= len(late)
        if queue:
            self._timer = self._clock.callLater(queue[0][0] - now, self._due)
        for call in late:
            call.cancel()


LATER = object()
"""
What a database's C{loadAtOnce} answers when it cannot answer at once
(SQLite, while another connection resets or recovers its WAL): the request
path calls its C{load} instead.
"""


def answeredAtOnce(database: object, name: str) -> Callable[..., Any] | None:
    """
    The synchronous form of a database method, when the database offers
    one: C{loadAtOnce} for C{load}, C{saveAtOnce} for C{save} (the memory
    database has both).  It takes the same arguments, returns the result
    itself rather than a L{Deferred} firing with it (a load gives the
    lifetime and fields, not a L{StoredSession}), and raises what the
    L{Deferred} would fail with; a C{loadAtOnce} may answer L{LATER}.
    Taken from the most derived class that defines C{name} or its
    synchronous form: a subclass overriding C{load} or C{save} alone is
    called as it is, and one adding the synchronous form answers for the
    method it inherits.

    @param database: a database.
    @param name: C{load} or C{save}.
    @return: the bound synchronous method, or C{None}.
    """
    return _variant(database, name, "AtOnce")


def loadInParts(database: object) -> Callable[[str], Deferred[Any]] | None:
    """
    The database's C{loadParts}, when it offers one (Redis): L{load
    <txsessions.interfaces.IDatabase.load>}, answered with the lifetime and
    fields that L{answeredAtOnce}'s C{loadAtOnce} gives, later, rather than
    a L{StoredSession}, which the request path would only take apart.
    Taken as L{answeredAtOnce} takes C{loadAtOnce}.

    @param database: a database.
    @return: the bound method, or C{None}.
    """
    return _variant(database, "load", "Parts")


def saveInParts(database: object) -> Callable[..., Deferred[Any]] | None:
    """
    The database's C{saveParts}, when it offers one: L{save
    <txsessions.interfaces.IDatabase.save>}, given the fields of its
    L{SessionChanges <txsessions.records.SessionChanges>} in order, as
    C{saveAtOnce} takes them (the lifetime as when the session was created
    and expires), and answering later: building the record costs more than
    the rest of the save's way to the database.  Taken as
    L{answeredAtOnce} takes C{saveAtOnce}.

    @param database: a database.
    @return: the bound method, or C{None}.
    """
    return _variant(database, "save", "Parts")


def _variant(database: object, name: str, variant: str) -> Callable[..., Any] | None:
    full = name + variant
    for klass in type(database).__mro__:
        defined = vars(klass)
        if full in defined:
            return cast("Callable[..., Any]", getattr(database, full))
        if name in defined:
            return None
    return None


def isDeferred(value: object) -> TypeIs[Deferred[Any]]:
    """
    C{isinstance(value, Deferred)}, without the cost of asking an ABC:
    L{Deferred} is an C{Awaitable}, so C{isinstance} goes through
    C{ABCMeta.__instancecheck__}, on every request.

    @param value: anything.
    @return: whether it is a L{Deferred} (or of a subclass).
    """
    return Deferred in type(value).__mro__


def fromAwaitable(result: Awaitable[T]) -> Deferred[T]:
    """
    @param result: a coroutine, a L{Deferred} or any other awaitable.
    @return: a L{Deferred} firing with what awaiting C{result} gives.
    """
    return Deferred.fromCoroutine(_awaited(result))


async def _awaited(result: Awaitable[T]) -> T:
    return await result


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
