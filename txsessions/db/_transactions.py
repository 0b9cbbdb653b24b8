# -*- test-case-name: tests.db.test_races,tests.db.test_persistent -*-
"""
What the group-commit writer (L{txsessions.db._writer}) asks of a
database's write transactions, and the errors they raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from ..errors import DatabaseError

T = TypeVar("T")
Txn = TypeVar("Txn")


class LockTimeout(Exception):
    """
    The database's write lock could not be had before the deadline.
    """


class TransactionLost(DatabaseError):
    """
    A change's failure undid the whole transaction, not only its savepoint
    (SQLite may, on a full disk or an I/O error): the batch's other changes
    were undone too, and none of it may be committed as though they were
    not.
    """


class Transactions(Protocol[Txn]):
    """
    The transactions of one database, as the writer uses them.

    @ivar inline: whether a transaction may be begun (without waiting) and
        its changes run in the reactor thread, only its commit going to the
        writer thread: a connection that any thread may use in turn
        (SQLite's).  LMDB's write transaction belongs to the thread that
        began it, so LMDB's runs wholly in the writer thread.
    @ivar busyWait: the database's default for L{Batching.busyWait
        <txsessions.db._writer.Batching.busyWait>}: how long the writer
        leaves the write lock free after a batch of several changes,
        waiting for more.  Another process that polls for the lock
        (SQLite's busy handler sleeps up to 100 ms between tries) finds it
        free only in such gaps; and the callers of the last batch, back
        with their next changes, join one transaction instead of two (the
        gap ends once they are, or once no more arrive).
    """

    inline: bool
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
