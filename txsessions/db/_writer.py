# -*- test-case-name: tests.db.test_races,tests.db.test_persistent -*-
"""
Group commit for the embedded databases: every change waiting is committed
in one transaction, by one writer thread, so one fsync serves all of them.
Changes gather in the reactor thread, which hands the writer thread one
batch at a time; where the database allows it (SQLite), the changes run in
the reactor thread and only the commit in the writer thread (see
L{Writer}).

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

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any, Generic, TypeVar, cast

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.python.failure import Failure

from ..errors import DatabaseError
from ._transactions import LockTimeout, TransactionLost, Transactions

T = TypeVar("T")


@attrs.frozen
class Batching:
    """
    How the writer gathers changes into one transaction.

    @ivar maxChanges: the most changes one transaction holds.
    @ivar maxBytes: the most bytes of values one transaction holds (a change
        larger than this goes alone).
    @ivar maxWait: how long, in seconds, a batch waits for more changes to
        join it before it is begun; 0 (the default): it never waits, and
        changes gather only while the previous transaction is being written.
    @ivar busyWait: how long it waits when busy: when the previous
        transaction held more than one change.  C{None} (the default): the
        database's own, L{Transactions.busyWait}.  A change arriving at an
        idle database never waits for it, and (without C{maxWait}) the wait
        ends early once as many changes wait as the largest recent batch
        held (those callers are back, and more are not expected), or once
        changes wait and no other has arrived for L{Writer.quiet} (1 ms).
    """

    maxChanges: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    maxBytes: int = attrs.field(default=4 << 20, validator=attrs.validators.ge(1))
    maxWait: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    busyWait: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.ge(0)),
    )


@attrs.define
class _Change(Generic[T]):
    work: Callable[[Any], T]
    size: int
    deadline: float
    deferred: Deferred[T]
    inline: bool = True
    outcome: Any = None
    failed: bool = False
    seq: int = 0


@attrs.define
class _Batch:
    """
    A batch handed to the writer thread whole: its changes already run in
    C{txn} (begun in the reactor thread), or, when C{txn} is C{None}, to be
    run there.
    """

    changes: list[_Change[Any]]
    txn: Any = None


_STOP = object()


class Writer:
    """
    Commits changes in batches, one transaction (and one fsync) for all the
    changes that arrived while the previous one was being written.

    Changes gather in the reactor thread, which hands the writer thread the
    next batch once the last one's outcomes are delivered (or at once, when
    none is under way); so the writer thread needs the interpreter lock only
    to begin (or run) a batch and to hand its outcomes back.  Where the
    database allows it (L{Transactions.inline}), a batch is run
    in the reactor thread, which already holds the interpreter, and only
    its commit (the wait for the disk, which holds no lock on Python
    objects) goes to the writer thread: one hand-over each way per batch.
    A thread running the changes themselves would take the interpreter
    lock back after each of the database's calls, and, against a busy
    reactor, wait for it each time.  When another process holds the write
    lock, the batch goes to the writer thread whole, which waits for it.
    After a batch of several changes, the next begins only after
    L{Batching.busyWait} (5 ms), in which another process polling
    for the lock may take it, or sooner: once as many changes wait as that
    batch held, or once changes wait and no other has arrived for L{quiet}
    (a change with nobody behind it starts its batch 1 ms after it
    arrived, not 5).  Either way, never within its delivery: changes its
    callers made at once leave the lock free for the shorter of L{quiet}
    and L{Batching.busyWait} at least.

    @ivar commits: how many transactions it has committed.
    @ivar changes: how many changes those held.
    @ivar committing: how many seconds it has spent committing them (on
        C{time.perf_counter}'s clock): the wait for the disk.
    """

    #: How long, in seconds, a gap after a busy batch goes on once changes
    #: wait and no other has arrived: the callers of the last batch come
    #: back one after another, a request's work apart (a fraction of a
    #: millisecond), so a change with nobody behind it for this long starts
    #: its batch rather than wait out the gap (L{Batching.busyWait}).
    quiet = 0.001

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
        self._inline = transactions.inline
        self._threads = threads
        self._timeout = timeout
        self._batching = batching
        self._busyWait = (
            transactions.busyWait if batching.busyWait is None else batching.busyWait
        )
        # What the reactor thread hands the writer thread: one batch at a
        # time, then the order to stop.
        self._queue: deque[Any] = deque()
        self._ready = threading.Condition()
        # The changes waiting for the next batch, and whether one is being
        # committed (or about to be begun).
        self._waiting: list[_Change[Any]] = []
        self._busy = False
        # While the writer leaves a gap after a busy batch: the call ending
        # it, how many changes that batch held (as many waiting end it
        # early: its callers are back, and nobody else is coming), when it
        # ends at the latest and when the last change arrived in it.
        self._gap: Any = None
        self._company: float = 0
        self._gapEnds = 0.0
        self._arrived = 0.0
        self._stopping = False
        self._stopSent = False
        self._done = False
        self._waiters: list[Deferred[None]] = []
        # Changes are numbered as they are submitted, and delivered in that
        # order: a flush waits for the number last submitted.
        self._submitted = 0
        self._deliveredUpTo = 0
        self._flushes: deque[tuple[int, Deferred[None]]] = deque()
        self.commits = 0
        self.changes = 0
        self.committing = 0.0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, work: Callable[[Any], T], size: int = 0, *, inline: bool = True
    ) -> Deferred[T]:
        """
        Run C{work} in a write transaction, with others.

        @param work: the change; called with the transaction, in the
            reactor thread or in the writer thread (at once, or later).
        @param size: about how many bytes it writes.
        @param inline: whether it may run in the reactor thread; C{False}
            for a change that may take long (one reading every session):
            its batch runs in the writer thread.
        @return: a L{Deferred} firing with what C{work} returned once it is
            committed, or failing with what it raised, or with
            L{DatabaseError} when its deadline passed first.
        """
        d: Deferred[T] = Deferred()
        if self._stopping:
            d.errback(DatabaseError("the session database is closed"))
            return d
        waiting = self._waiting
        self._submitted += 1
        change = _Change(work, size, self._deadline(), d, inline, seq=self._submitted)
        waiting.append(change)
        if self._gap is not None:
            if len(waiting) >= self._company:
                self._gap.cancel()
                self._resume()
            else:
                self._arrived = cast(Any, self._threads).seconds()
        elif not self._busy:
            maxWait = self._batching.maxWait
            if maxWait:
                self._busy = True
                cast(Any, self._threads).callLater(maxWait, self._resume)
            else:
                self._startBatch()
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
        Wait for the changes submitted so far: what a count or a listing
        waits for, so that it sees them.  It submits no change of its own,
        so it never needs the write lock: with nothing under way it has
        fired already, even while another process holds the lock.

        @return: a L{Deferred} firing once every change submitted before is
            delivered (committed, or failed).
        """
        if self._deliveredUpTo >= self._submitted:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._flushes.append((self._submitted, d))
        return d

    def close(self) -> Deferred[None]:
        """
        Commit what was submitted, then stop the thread and release the
        connection.

        @return: a L{Deferred} firing once it has.
        """
        self._stopping = True
        if not self._busy:
            self._sendStop()
        if self._done:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def join(self, timeout: float | None = None) -> bool:
        """
        Stop, blocking until the thread has (at reactor shutdown).  Changes
        still waiting for the batch being committed are left unmade: nobody
        was told they were.

        @param timeout: the longest to wait, in seconds; no bound when
            C{None}.
        @return: whether the thread has stopped (it has not when the batch
            under way still waits for the database, whose write lock
            another process holds, after C{timeout}).
        """
        self._stopping = True
        self._sendStop()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _sendStop(self) -> None:
        if not self._stopSent:
            self._stopSent = True
            self._hand(_STOP)

    def _hand(self, item: object) -> None:
        """
        Give the writer thread a batch, or the order to stop.
        """
        with self._ready:
            self._queue.append(item)
            self._ready.notify()

    def _startBatch(self) -> None:
        """
        In the reactor thread: take the waiting changes (as many as a batch
        holds) and hand them to the writer thread; inline, run them first in
        a transaction begun here, when the write lock is free at once.
        """
        batch = self._cut(self._waiting)
        self._busy = True
        if not (self._inline and all(change.inline for change in batch)):
            self._hand(_Batch(batch))
            return
        transactions = self._transactions
        try:
            txn = transactions.begin(0)
        except Exception:
            # Locked by another process (or worse): the writer thread waits
            # for it, until the changes' deadlines.
            self._hand(_Batch(batch))
            return
        try:
            self._runAll(txn, batch)
        except BaseException:
            try:
                transactions.abort(txn)
            finally:
                self._hand(_Batch(batch))
            return
        self._hand(_Batch(batch, txn))

    def _cut(self, changes: list[_Change[Any]]) -> list[_Change[Any]]:
        """
        Take a batch from the front of C{changes} (within L{Batching}'s
        bounds).
        """
        limits = self._batching
        size = 0
        n = 0
        for change in changes:
            if n == limits.maxChanges or (n and size + change.size > limits.maxBytes):
                break
            size += change.size
            n += 1
        batch = changes[:n]
        del changes[:n]
        return batch

    def _finished(self) -> None:
        self._done = True
        # Nothing more will be delivered: whatever a flush waits for has
        # been, or never will be.
        self._flushed(self._submitted)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _flushed(self, upTo: int) -> None:
        """
        In the reactor thread: the changes numbered up to C{upTo} are
        delivered; fire the flushes waiting for them.
        """
        self._deliveredUpTo = max(self._deliveredUpTo, upTo)
        flushes = self._flushes
        while flushes and flushes[0][0] <= self._deliveredUpTo:
            flushes.popleft()[1].callback(None)

    def _take(self) -> tuple[list[_Change[Any]], Any, bool]:
        """
        In the writer thread: wait for the next batch.

        @return: the batch, the transaction its changes already ran in
            (C{None}: none), and whether the writer is to stop instead.
        """
        with self._ready:
            while not self._queue:
                self._ready.wait()
            head = self._queue.popleft()
        if head is _STOP:
            return [], None, True
        return head.changes, head.txn, False

    def _run(self) -> None:
        try:
            while True:
                batch, txn, stop = self._take()
                if stop:
                    break
                try:
                    self._commit(batch, txn)
                finally:
                    self._threads.callFromThread(self._delivered, batch)
        finally:
            try:
                self._transactions.close()
            finally:
                self._threads.callFromThread(self._finished)

    def _runAll(self, txn: Any, changes: list[_Change[Any]]) -> None:
        """
        Run each change in a savepoint of C{txn}, keeping its outcome.
        """
        nested = self._transactions.nested
        for change in changes:
            change.failed = False
            try:
                change.outcome = nested(txn, change.work)
            except TransactionLost:
                raise
            except Exception:
                change.failed = True
                change.outcome = Failure()

    def _commit(self, batch: list[_Change[Any]], txn: Any = None) -> None:
        """
        In the writer thread: commit C{batch}, each change keeping its own
        outcome (given to the reactor thread afterwards, whole).

        @param txn: the transaction the changes already ran in, or C{None}
            to run them here.
        """
        transactions = self._transactions
        pending = batch
        while pending:
            now = time.monotonic()
            if txn is None:
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
                ran = False
            else:
                live = pending
                ran = True
            try:
                if not ran:
                    self._runAll(txn, live)
                    now = time.monotonic()
                late = [c for c in live if now >= c.deadline]
                if late:
                    # Undo everything and do it again without them: the
                    # others' outcomes may depend on what the late ones did.
                    transactions.abort(txn)
                    txn = None
                    for change in late:
                        self._late(change)
                    pending = [c for c in live if c not in late]
                    continue
                started = perf_counter()
                transactions.commit(txn)
                self.committing += perf_counter() - started
            except BaseException:
                try:
                    transactions.abort(txn)
                except Exception:
                    pass
                self._failAll(live, Failure())
                break
            self.commits += 1
            self.changes += len(live)
            break

    def _delivered(self, batch: list[_Change[Any]]) -> None:
        """
        In the reactor thread: give each change of a finished batch its
        outcome; then start the next batch, after L{Batching.maxWait}, or
        L{Batching.busyWait} when this one held several changes.
        """
        try:
            _fire(batch)
        finally:
            if batch:
                self._flushed(batch[-1].seq)
            wait = self._batching.maxWait
            if len(batch) > 1:
                # Busy: leave the write lock free a while, for other
                # processes polling for it; what arrives meanwhile joins
                # the next batch.
                wait = max(wait, self._busyWait)
            if wait and not self._stopping:
                threads = cast(Any, self._threads)
                if self._batching.maxWait:
                    # A time the user asked for is waited whole.
                    self._company = math.inf
                    self._gap = threads.callLater(wait, self._resume)
                else:
                    # The gap ends once as many changes wait as the largest
                    # recent batch held (forgotten slowly, as callers
                    # leave), or once changes wait and no more arrive.
                    self._company = max(len(batch), self._company - 1)
                    now = threads.seconds()
                    self._gapEnds = now + wait
                    self._arrived = now
                    self._gap = threads.callLater(
                        min(self.quiet, wait), self._gapPassed
                    )
            else:
                self._resume()

    def _gapPassed(self) -> None:
        """
        In the reactor thread, during a gap: start the next batch if the
        gap is over or has gone quiet, or look again later.
        """
        threads = cast(Any, self._threads)
        now = threads.seconds()
        # Absolute times: a delay worked out from them may round to one
        # that does not move a clock on, and the check would spin.
        ends = self._gapEnds
        if self._waiting:
            ends = min(ends, self._arrived + self.quiet)
        if now >= ends:
            self._resume()
        else:
            self._gap = threads.callLater(
                min(ends, now + self.quiet) - now, self._gapPassed
            )

    def _resume(self) -> None:
        """
        In the reactor thread: start the next batch, if any.
        """
        self._gap = None
        self._busy = False
        if self._waiting:
            self._startBatch()
        elif self._stopping:
            self._sendStop()

    def _late(self, change: _Change[Any]) -> None:
        change.failed = True
        change.outcome = Failure(
            DatabaseError(
                "the session database could not commit the change before its "
                "deadline; it was not made"
            )
        )

    def _failAll(self, changes: list[_Change[Any]], failure: Failure) -> None:
        for change in changes:
            change.failed = True
            change.outcome = failure


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
