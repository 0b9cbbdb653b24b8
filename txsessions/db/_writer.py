# -*- test-case-name: tests.db.test_persistent,tests.db.test_conformance -*-
"""
Group commit for the embedded databases: one writer thread takes every
change waiting and commits them in one transaction, so one fsync serves all
of them.

Each change runs inside its own savepoint (a nested transaction), so one
that fails (a full database, a value too large) is undone alone and fails
alone; the others in its batch commit.  A change is acknowledged (its
L{Deferred} fires) only once the transaction holding it has committed.

Each change also has a deadline: a change whose deadline has passed when
its transaction is about to commit is undone and fails with
L{DatabaseError}, so a change whose caller has given up on it (and answered
503) never takes effect later.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, cast

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from ..errors import DatabaseError

T = TypeVar("T")
Txn = TypeVar("Txn")


@attrs.frozen
class Batching:
    """
    How the writer gathers changes into one transaction.

    @ivar maxChanges: the most changes one transaction holds.
    @ivar maxBytes: the most bytes of values one transaction holds (a change
        larger than this goes alone).
    @ivar maxWait: the longest, in seconds, the writer waits for more
        changes to join a transaction; 0 (the default): it never waits, and
        changes gather only while the previous transaction is being written.
    @ivar busyWait: the longest, in seconds, it waits when busy: when the
        previous transaction held more than one change.  C{None} (the
        default): the database's own, L{Transactions.busyWait}.  A change
        arriving at an idle database never waits.
    """

    maxChanges: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    maxBytes: int = attrs.field(default=4 << 20, validator=attrs.validators.ge(1))
    maxWait: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    busyWait: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.ge(0)),
    )


class LockTimeout(Exception):
    """
    The database's write lock could not be had before the deadline.
    """


class Transactions(Protocol[Txn]):
    """
    The transactions of one database, as the writer thread uses them.

    @ivar busyWait: the database's default for L{Batching.busyWait}: how
        long the writer leaves the write lock free after a batch of several
        changes, waiting for more.  Waiting only delays the changes, which
        gather anyway while a transaction is being written; but another
        process that polls for the lock (SQLite's busy handler sleeps up to
        100 ms between tries) finds it free only in such gaps.
    """

    busyWait: float

    def begin(self, wait: float) -> Txn:
        """
        Start a write transaction.

        @param wait: the longest, in seconds, to wait for the write lock.
        @raise LockTimeout: when it could not be had in time.
        """

    def nested(self, txn: Txn, work: Callable[[Txn], T]) -> T:
        """
        Run C{work} in a savepoint of C{txn}: kept when it returns, undone
        when it raises.
        """

    def commit(self, txn: Txn) -> None:
        """
        Make C{txn} durable.
        """

    def abort(self, txn: Txn) -> None:
        """
        Undo C{txn}.
        """

    def close(self) -> None:
        """
        Release the connection; called in the writer thread, last.
        """


@attrs.define
class _Change(Generic[T]):
    work: Callable[[Any], T]
    size: int
    deadline: float
    deferred: Deferred[T]
    outcome: Any = None
    failed: bool = False


_STOP = object()


def _nothing(txn: object) -> None:
    """
    A change that changes nothing.
    """


class Writer:
    """
    A writer thread committing changes in batches.

    @ivar commits: how many transactions it has committed.
    @ivar changes: how many changes those held.
    """

    #: How long before its deadline a change's transaction must start to
    #: commit, at most: room for the commit itself and for delivering its
    #: result.  A quarter of the deadline when that is shorter.
    commitAllowance = 0.25

    def __init__(
        self,
        transactions: Transactions[Any],
        threads: IReactorThreads,
        timeout: float | None,
        batching: Batching,
        name: str,
    ) -> None:
        """
        @param transactions: the database's transactions.
        @param threads: what delivers results to the reactor thread.
        @param timeout: the deadline of each change, in seconds from its
            submission (C{None}: none).
        @param batching: how to gather changes.
        @param name: the thread's name.
        """
        self._transactions = transactions
        self._threads = threads
        self._timeout = timeout
        self._batching = batching
        self._busyWait = (
            transactions.busyWait if batching.busyWait is None else batching.busyWait
        )
        self._queue: deque[Any] = deque()
        self._ready = threading.Condition()
        # Whether the thread sleeps until a change comes: only then does a
        # submission wake it (one wake-up per batch, not one per change).
        self._idle = False
        self._stopping = False
        self._done = False
        self._waiters: list[Deferred[None]] = []
        self.commits = 0
        self._lastBatch = 0
        self.changes = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Any], T], size: int = 0) -> Deferred[T]:
        """
        Run C{work} in a write transaction, with others.

        @param work: the change; called in the writer thread with the
            transaction.
        @param size: about how many bytes it writes.
        @return: a L{Deferred} firing with what C{work} returned once it is
            committed, or failing with what it raised, or with
            L{DatabaseError} when its deadline passed first.
        """
        d: Deferred[T] = Deferred()
        if self._stopping:
            d.errback(DatabaseError("the session database is closed"))
            return d
        with self._ready:
            self._queue.append(_Change(work, size, self._deadline(), d))
            if self._idle:
                self._idle = False
                self._ready.notify()
        return d

    def _deadline(self) -> float:
        """
        @return: when a change submitted now must have started to commit
            (on C{time.monotonic}'s clock).
        """
        timeout = self._timeout
        if not timeout:
            return float("inf")
        return time.monotonic() + timeout - min(self.commitAllowance, timeout / 4)

    def useDeadline(self, timeout: float) -> None:
        """
        Give each change submitted from now on this deadline.

        @param timeout: seconds from the call (0: no deadline).
        """
        self._timeout = timeout or None

    def flush(self) -> Deferred[None]:
        """
        @return: a L{Deferred} firing once every change submitted before is
            committed (or has failed): what a count or a listing waits for,
            so that it sees them.  It takes its turn in a batch, and holds
            no other change back.
        """
        return self.submit(_nothing)

    def close(self) -> Deferred[None]:
        """
        Commit what was submitted, then stop the thread and release the
        connection.

        @return: a L{Deferred} firing once it has.
        """
        self._stop()
        if self._done:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def join(self) -> None:
        """
        Stop, blocking until the thread has (at reactor shutdown).
        """
        self._stop()
        self._thread.join()

    def _stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            with self._ready:
                self._queue.append(_STOP)
                self._idle = False
                self._ready.notify()

    def _finished(self) -> None:
        self._done = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _take(self) -> tuple[list[_Change[Any]], bool]:
        """
        Wait for changes and take a batch of them.

        @return: the batch, and whether the writer is to stop after it.
        """
        limits = self._batching
        with self._ready:
            while not self._queue:
                self._idle = True
                self._ready.wait()
            self._idle = False
            batch: list[_Change[Any]] = []
            size = 0
            wait = limits.maxWait
            if self._lastBatch > 1:
                wait = max(wait, self._busyWait)
            waitUntil = time.monotonic() + wait
            while len(batch) < limits.maxChanges:
                if not self._queue:
                    left = waitUntil - time.monotonic()
                    if left <= 0 or not batch:
                        break
                    self._ready.wait(left)
                    continue
                head = self._queue[0]
                if head is _STOP:
                    if not batch:
                        self._queue.popleft()
                        return [], True
                    break
                if batch and size + head.size > limits.maxBytes:
                    break
                batch.append(self._queue.popleft())
                size += head.size
            self._lastBatch = len(batch)
            return batch, False

    def _run(self) -> None:
        try:
            while True:
                batch, stop = self._take()
                if stop:
                    break
                self._commit(batch)
        finally:
            try:
                self._transactions.close()
            finally:
                self._threads.callFromThread(self._finished)

    def _commit(self, batch: list[_Change[Any]]) -> None:
        """
        Commit C{batch}, each change keeping its own outcome; deliver them.
        """
        transactions = self._transactions
        pending = batch
        while pending:
            now = time.monotonic()
            live = []
            for change in pending:
                if now >= change.deadline:
                    self._late(change)
                else:
                    live.append(change)
            if not live:
                break
            latest = max(change.deadline for change in live)
            try:
                txn = transactions.begin(latest - now)
            except LockTimeout:
                for change in live:
                    self._late(change)
                break
            except BaseException:
                self._failAll(live, Failure())
                break
            try:
                for change in live:
                    change.failed = False
                    try:
                        change.outcome = transactions.nested(txn, change.work)
                    except Exception:
                        change.failed = True
                        change.outcome = Failure()
                now = time.monotonic()
                late = [c for c in live if now >= c.deadline]
                if late:
                    # Undo everything and do it again without them: the
                    # others' outcomes may depend on what the late ones did.
                    transactions.abort(txn)
                    for change in late:
                        self._late(change)
                    pending = [c for c in live if c not in late]
                    continue
                transactions.commit(txn)
            except BaseException:
                try:
                    transactions.abort(txn)
                except Exception:
                    pass
                self._failAll(live, Failure())
                break
            self.commits += 1
            self.changes += len(live)
            self._threads.callFromThread(_fire, live)
            break

    def _deliver(self, change: _Change[Any]) -> None:
        self._threads.callFromThread(_fire, [change])

    def _late(self, change: _Change[Any]) -> None:
        change.failed = True
        change.outcome = Failure(
            DatabaseError(
                "the session database could not commit the change before its "
                "deadline; it was not made"
            )
        )
        self._deliver(change)

    def _failAll(self, changes: list[_Change[Any]], failure: Failure) -> None:
        for change in changes:
            change.failed = True
            change.outcome = failure
        self._threads.callFromThread(_fire, changes)


def _fire(changes: list[_Change[Any]]) -> None:
    """
    Give each change's outcome to its caller, in the reactor thread: one
    call for a whole batch.
    """
    for change in changes:
        if change.failed:
            change.deferred.errback(change.outcome)
        else:
            change.deferred.callback(change.outcome)


class Threads:
    """
    The threads of a persistent database: its L{Writer}, and one thread for
    the long reads (counting, listing), stopped when the reactor shuts down
    or the database closes, whichever comes first.

    @ivar writer: the writer thread.
    """

    def __init__(
        self,
        writer: Writer,
        threads: IReactorThreads,
        name: str,
        release: Callable[[], None],
    ) -> None:
        """
        @param writer: the writer thread.
        @param threads: what delivers the reading thread's results.
        @param name: the reading thread's name.
        @param release: what closes the database's files and connections
            once both threads have stopped.
        """
        self.writer = writer
        self._threads = threads
        self._release = release
        self._reads = ThreadPool(minthreads=1, maxthreads=1, name=name)
        self._reads.start()
        # The threads must not outlive the reactor, closed or not.
        self._stopTrigger: Any = cast(Any, threads).addSystemEventTrigger(
            "during", "shutdown", self._stop
        )

    def read(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """
        @return: a L{Deferred} firing with C{work(*args)}, run in the
            reading thread.
        """
        return deferToThreadPool(cast(Any, self._threads), self._reads, work, *args)

    def close(self) -> Deferred[None]:
        """
        Commit what is queued, stop both threads and release the database.

        @return: a L{Deferred} firing once done.
        """
        if self._stopTrigger is None:
            return succeed(None)
        cast(Any, self._threads).removeSystemEventTrigger(self._stopTrigger)
        self._stopTrigger = None
        return self.writer.close().addCallback(lambda _: self._stopReads())

    def _stop(self) -> None:
        self.writer.join()
        self._stopReads()

    def _stopReads(self) -> None:
        self._reads.stop()
        self._release()
