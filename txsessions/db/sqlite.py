# -*- test-case-name: tests.db.test_conformance,tests.db.test_persistent -*-
"""
Sessions in an SQLite file (in WAL mode).  Changes are committed in
batches by one thread (L{txsessions.db._writer}; the changes themselves
run in the reactor thread when the write lock is free, except those that
read every session), each read and written inside one C{BEGIN IMMEDIATE}
transaction, so no other process's change can land between them.  A
load, one row by its key, runs inline (as LMDB's do); counts and listings
run in a thread of their own.  No read waits for a write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, unquote

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.logger import Logger

from .._calls import LATER
from .._fields import LoadedParts, storedRecord
from ..errors import DatabaseError, SessionLimitError
from ..ids import redact
from ..records import SessionChanges, SessionInfo, StoredSession, ownerOf
from ._apply import applyChanges
from ._persistent import (
    Expiry,
    PersistentDatabase,
    Saved,
    changeSize,
    decodeFields,
    encodeFields,
    lifetimeOf,
    timesOf,
)
from ._threads import Threads
from ._transactions import LockTimeout, TransactionLost
from ._writer import Batching, Writer

_log = Logger()

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS txsessions (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS txsessions_expires ON txsessions (expires);
"""

_OWNER_COLUMN = """
ALTER TABLE txsessions ADD COLUMN owner TEXT;
"""
"""
The owner index's column, added to a file made before it existed.
"""

_OWNER_INDEX = """
CREATE INDEX IF NOT EXISTS txsessions_owner ON txsessions (owner)
    WHERE owner IS NOT NULL;
"""


_CORRUPT = """
    typeof(created) NOT IN ('integer', 'real') OR abs(created) >= 9e999
    OR (expires IS NOT NULL
        AND (typeof(expires) NOT IN ('integer', 'real') OR abs(expires) >= 9e999))
    OR txsessions_corrupt_fields(CAST(fields AS BLOB))
"""
"""
The sessions whose times are not finite numbers, or whose fields are not a
JSON object of strings (L{_corruptFields}, given them as bytes: text that
is not UTF-8 would fail the call; a row edited by hand): no
session to a load, they would count as live for ever (and fill
C{maxSessions}), so they are removed at start-up (looked for first, so that
an open needs no write lock).
"""


def _corruptFields(fields: object) -> bool:
    """
    @return: whether a row's fields are no session's (what L{decodeFields}
        refuses, a load ignores and L{_open} removes).
    """
    if not isinstance(fields, (str, bytes)):
        return True
    try:
        decodeFields(fields)
    except ValueError:
        return True
    return False


def isInMemory(path: str) -> bool:
    """
    @return: whether C{path} names an SQLite database held in memory or
        a temporary one (C{:memory:}, C{""}, or a C{file:} URI asking for
        either) rather than a file: one that txsessions' threads, each with
        a connection of its own, would each see empty.
    """
    if path.startswith("file:"):
        name, _, query = path[len("file:") :].partition("?")
        options = parse_qs(query)
        if "memory" in options.get("mode", ()) or "memdb" in options.get("vfs", ()):
            return True
        path = unquote(name)
    return path in ("", ":memory:")


def _open(path: str) -> list[Expiry]:
    """
    Open (or create) the file, check it, and list the sessions' expiries;
    blocking, once, at start-up.
    """
    if isInMemory(path):
        raise DatabaseError(
            f"{path!r} is an in-memory SQLite database, which txsessions' "
            "threads would each see empty: use MemoryDatabase, or a file"
        )
    try:
        connection = sqlite3.connect(path)
        try:
            (check,) = connection.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            connection.executescript(_SCHEMA)
            columns = [
                row[1] for row in connection.execute("PRAGMA table_info(txsessions)")
            ]
            if "owner" not in columns:
                try:
                    connection.executescript(_OWNER_COLUMN)
                except sqlite3.OperationalError as e:
                    # Another process opening the same file added it first.
                    if "duplicate column" not in str(e):
                        raise
            connection.executescript(_OWNER_INDEX)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.create_function(
                "txsessions_corrupt_fields", 1, _corruptFields, deterministic=True
            )
            corrupt = 0
            found = f"SELECT EXISTS (SELECT 1 FROM txsessions WHERE {_CORRUPT})"
            if connection.execute(found).fetchone()[0]:
                deleting = f"DELETE FROM txsessions WHERE {_CORRUPT}"
                corrupt = connection.execute(deleting).rowcount
                connection.commit()
            rows = connection.execute(
                "SELECT key, expires FROM txsessions WHERE expires IS NOT NULL"
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as e:
        raise DatabaseError(
            f"cannot open the SQLite session database {path!r}: {e}"
        ) from e
    if corrupt:
        _log.warn("removed {n} corrupt sessions from {path}", n=corrupt, path=path)
    # Every time left is a finite number: the others were removed above.
    return [(key, expires) for key, expires in rows]


_LONGEST_WAIT = 60.0
"""
The longest, in seconds, a change without a deadline waits for another
process's write lock.
"""


class _SQLiteTransactions:
    """
    Write transactions on the writer thread's connection: C{BEGIN
    IMMEDIATE}, so a change reads and writes under the write lock, and no
    other connection's C{DELETE} can land between its read and its write.
    Any thread may use the connection in turn: a batch runs in the reactor
    thread when the lock is free at once (a transaction's pages stay in
    memory until its commit), and commits in the writer thread.

    @ivar busyWait: 5 ms at most, ended early once the last batch's callers
        are back: another process waiting for the write lock polls for it
        (SQLite's busy handler sleeps 1, 2, 5, ... up to 100 ms between
        tries) and gets it only while it is free; without a gap between
        busy transactions it waited about 0.9 s for each.  Under wrk -c16,
        16 requests take 2-3 ms to come back here: a 2 ms gap cut batches
        short (about 12 changes, the rest in a second transaction).
    """

    inline = True
    busyWait = 0.005

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA synchronous = FULL")
        self._busyWait = -1

    def begin(self, wait: float) -> sqlite3.Connection:
        # Whole tenths of a second, so the pragma is not run on every batch.
        milliseconds = max(int(min(wait, _LONGEST_WAIT) * 10), 0) * 100
        if milliseconds != self._busyWait:
            self._connection.execute(f"PRAGMA busy_timeout = {milliseconds}")
            self._busyWait = milliseconds
        try:
            self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if self._connection.in_transaction or "locked" not in str(e):
                raise
            raise LockTimeout(str(e)) from e
        return self._connection

    def nested(self, txn: sqlite3.Connection, work: Callable[[Any], T]) -> T:
        txn.execute("SAVEPOINT change")
        try:
            result = work(txn)
        except BaseException as e:
            if not txn.in_transaction:
                # SQLite rolled the whole transaction back (SQLITE_FULL,
                # SQLITE_IOERR, ...): the changes before this one are gone,
                # and the next would each commit on their own.
                raise TransactionLost(
                    f"the session database undid a whole batch: {e}"
                ) from e
            txn.execute("ROLLBACK TO change")
            txn.execute("RELEASE change")
            raise
        if not txn.in_transaction:
            # As above, from a change that caught the error and returned.
            raise TransactionLost("the session database undid a whole batch")
        txn.execute("RELEASE change")
        return result

    def commit(self, txn: sqlite3.Connection) -> None:
        txn.execute("COMMIT")

    def abort(self, txn: sqlite3.Connection) -> None:
        if txn.in_transaction:
            txn.execute("ROLLBACK")

    def close(self) -> None:
        self._connection.close()


def _liveElsewhere(txn: Any, key: str, now: float) -> int:
    """
    @return: how many sessions other than C{key} are live at C{now}.
    """
    (n,) = txn.execute(
        "SELECT COUNT(*) FROM txsessions WHERE key != ? "
        "AND (expires IS NULL OR expires > ?)",
        (key, now),
    ).fetchone()
    return int(n)


def _described(rows: Any) -> list[SessionInfo]:
    """
    @param rows: rows of key, created, expires and fields.
    @return: what to tell of each, corrupt ones left out.
    """
    found: list[SessionInfo] = []
    for key, created, expires, fields in rows:
        try:
            found.append(
                SessionInfo.ofFields(
                    key, lifetimeOf(created, expires), decodeFields(fields)
                )
            )
        except ValueError:
            pass
    return found


class _SQLiteBackend:
    def __init__(
        self,
        path: str,
        threads: IReactorThreads,
        maxSessions: int,
        timeout: float | None,
        batching: Batching,
    ) -> None:
        self.initialExpirations = _open(path)
        self._maxSessions = maxSessions
        # Reads have connections of their own: in WAL mode they see the
        # last commit and never wait for a write.  A load (one row by its
        # primary key, about 16 us here from the page cache) runs inline, as
        # LMDB's do, on a connection that never waits for a lock: when one
        # is busy, it goes to the reading thread, with the longer reads.
        self._inline = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=0
        )
        self._reader = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False
        )
        self._threads = Threads(
            Writer(
                _SQLiteTransactions(path),
                threads,
                timeout,
                batching,
                "txsessions-sqlite",
            ),
            threads,
            "txsessions-sqlite-r",
            self._closeReaders,
        )
        self.writer = self._threads.writer

    def _closeReaders(self) -> None:
        self._reader.close()
        self._inline.close()

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        return self._threads.read(work, self._reader)

    def readParts(self, key: str, now: float) -> LoadedParts | None | object:
        """
        Read a session in the reactor thread, on the connection that never
        waits for a lock.

        @return: when the session was created and expires, and its fields;
            C{None} when it is absent, corrupt or ended at C{now}; L{LATER}
            when the file is busy (another connection is resetting or
            recovering the WAL): then L{load} reads it in a thread.
        @raise sqlite3.Error: when SQLite failed otherwise.
        """
        try:
            return _rowParts(self._inline, key, now)
        except sqlite3.OperationalError:
            return LATER

    def load(self, key: str, now: float) -> Deferred[StoredSession | None]:
        try:
            parts = self.readParts(key, now)
        except sqlite3.Error:
            return fail()
        if parts is LATER:
            return self._read(lambda txn: storedRecord(_rowParts(txn, key, now)))
        return succeed(storedRecord(cast("LoadedParts | None", parts)))

    def save(self, key: str, changes: SessionChanges, now: float) -> Deferred[Saved]:
        def save(txn: Any) -> Saved:
            row = txn.execute(
                "SELECT created, expires, fields FROM txsessions WHERE key = ?", (key,)
            ).fetchone()
            before = None if row is None else row[1]
            if changes.create:
                assert changes.lifetime is not None
                maxSessions = self._maxSessions
                if maxSessions and _liveElsewhere(txn, key, now) >= maxSessions:
                    raise SessionLimitError(f"{maxSessions} sessions live")
                lifetime, fields = changes.lifetime, {}
            elif row is None:
                return Saved(None)
            else:
                try:
                    fields = decodeFields(row[2])
                    stored = lifetimeOf(row[0], row[1])
                except ValueError:
                    return Saved(None, before, before)
                if stored.hasExpired(now):
                    return Saved(None, before, before)
                lifetime = changes.lifetime or stored
            result = applyChanges(fields, changes)
            txn.execute(
                "INSERT OR REPLACE INTO txsessions "
                "(key, created, expires, fields, owner) VALUES (?, ?, ?, ?, ?)",
                (
                    key,
                    lifetime.createdAt,
                    lifetime.expiresAt,
                    encodeFields(fields),
                    ownerOf(fields),
                ),
            )
            return Saved(result, before, lifetime.expiresAt)

        # Counting the live sessions reads them all: not in the reactor.
        counts = changes.create and self._maxSessions > 0
        return self.writer.submit(save, changeSize(changes), inline=not counts)

    def rename(
        self, oldKey: str, newKey: str, now: float
    ) -> Deferred[tuple[bool, float | None]]:
        def rename(txn: Any) -> tuple[bool, float | None]:
            row = txn.execute(
                "UPDATE txsessions SET key = ? "
                "WHERE key = ? AND (expires IS NULL OR expires > ?) RETURNING expires",
                (newKey, oldKey, now),
            ).fetchone()
            return (False, None) if row is None else (True, row[0])

        return self.writer.submit(rename)

    def destroy(self, key: str) -> Deferred[tuple[bool, float | None]]:
        def destroy(txn: Any) -> tuple[bool, float | None]:
            row = txn.execute(
                "DELETE FROM txsessions WHERE key = ? RETURNING expires", (key,)
            ).fetchone()
            return (False, None) if row is None else (True, row[0])

        return self.writer.submit(destroy)

    def destroyAll(self) -> Deferred[list[tuple[str, float | None]]]:
        def destroyAll(txn: Any) -> list[tuple[str, float | None]]:
            rows = txn.execute(
                "DELETE FROM txsessions RETURNING key, expires"
            ).fetchall()
            return [(key, expires) for key, expires in rows]

        return self.writer.submit(destroyAll, inline=False)

    def count(self, now: float) -> Deferred[int]:
        def count(txn: Any) -> int:
            (n,) = txn.execute(
                "SELECT COUNT(*) FROM txsessions WHERE expires IS NULL OR expires > ?",
                (now,),
            ).fetchone()
            return int(n)

        return self.writer.flush().addCallback(lambda _: self._read(count))

    def sessions(self, prefix: str, now: float) -> Deferred[list[SessionInfo]]:
        def sessions(txn: Any) -> list[SessionInfo]:
            rows = txn.execute(
                "SELECT key, created, expires, fields FROM txsessions "
                "WHERE substr(key, 1, ?) = ? AND (expires IS NULL OR expires > ?)",
                (len(prefix), prefix, now),
            )
            return _described(rows)

        return self.writer.flush().addCallback(lambda _: self._read(sessions))

    def sessionsOf(self, owner: str, now: float) -> Deferred[list[SessionInfo]]:
        def sessionsOf(txn: Any) -> list[SessionInfo]:
            rows = txn.execute(
                "SELECT key, created, expires, fields FROM txsessions "
                "WHERE owner = ? AND (expires IS NULL OR expires > ?)",
                (owner, now),
            )
            return _described(rows)

        return self.writer.flush().addCallback(lambda _: self._read(sessionsOf))

    def purgeExpired(self, now: float) -> Deferred[list[Expiry]]:
        def purge(txn: Any) -> list[Expiry]:
            rows = txn.execute(
                "DELETE FROM txsessions WHERE expires <= ? RETURNING key, expires",
                (now,),
            ).fetchall()
            return [(key, expires) for key, expires in rows]

        return self.writer.submit(purge, inline=False)

    def deleteIfExpired(self, key: str, now: float) -> Deferred[bool]:
        def delete(txn: Any) -> bool:
            row = txn.execute(
                "DELETE FROM txsessions WHERE key = ? AND expires <= ? RETURNING 1",
                (key, now),
            ).fetchone()
            return row is not None

        return self.writer.submit(delete)

    def close(self) -> Deferred[None]:
        return self._threads.close()

    def closeNow(self) -> None:
        self._threads.closeNow()


def _rowParts(txn: Any, key: str, now: float) -> LoadedParts | None:
    """
    @return: the session C{key} names, read with C{txn}, as
        L{_SQLiteBackend.readParts} answers it.
    """
    row = txn.execute(
        "SELECT created, expires, fields FROM txsessions WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    try:
        createdAt, expiresAt = timesOf(row[0], row[1])
        if expiresAt is not None and now >= expiresAt:
            return None
        return createdAt, expiresAt, decodeFields(row[2])
    except ValueError:
        _log.warn("session {key} is corrupt; ignored", key=redact(key))
        return None


class SQLiteDatabase(PersistentDatabase):
    """
    Sessions in an SQLite file.  Sessions found there when it opens are
    expired on schedule again; those whose time passed while the server was
    down are removed on the reactor's first turn, with
    L{DestroyReason.expired} events.

    Changes are committed by one writer thread, those that arrive while a
    transaction is being written together in the next (group commit: see
    L{Batching}); loads run inline, counts and listings in a thread, each on
    a connection of its own, and never wait for a write.  Several processes
    may share the file.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: IReactorTime | None = None,
        threads: IReactorThreads | None = None,
        maxSessions: int = 0,
        timeout: float | None = None,
        batching: Batching | None = None,
    ) -> None:
        """
        @param path: the file, created if need be.
        @param clock: what schedules expirations; the global reactor when
            C{None}.
        @param threads: what delivers the threads' results; the global
            reactor when C{None}.
        @param maxSessions: the most live sessions it holds (0: no limit);
            once full, new sessions are refused with L{SessionLimitError}.
        @param timeout: the deadline of each change, in seconds from the
            call: a change not committed by then fails with L{DatabaseError}
            and never takes effect (C{None}: no deadline).  Give it the
            manager's C{Config.databaseTimeout}.
        @param batching: how changes are gathered into transactions; the
            defaults of L{Batching} when C{None}.
        @raise DatabaseError: when the file cannot be opened or is corrupt;
            the message names it.
        """
        if threads is None:
            from twisted.internet import reactor

            threads = cast(IReactorThreads, reactor)
        backend = _SQLiteBackend(
            path, threads, maxSessions, timeout, batching or Batching()
        )
        super().__init__(backend, clock, f"sqlite:{path}")
        self._sqlite = backend

    def loadAtOnce(self, key: str) -> LoadedParts | None | object:
        """
        L{load}, answered at once: the lifetime's fields and the session's
        fields, without a L{Deferred} or a L{StoredSession} on the way, or
        L{LATER <txsessions._calls.LATER>} when the file is busy.  The
        request path calls it in load's place (see
        L{txsessions._calls.answeredAtOnce}).

        @param key: a store key.
        @return: when the session was created and expires, and its fields;
            C{None} when no live session has that key; or L{LATER}.
        @raise sqlite3.Error: when SQLite failed (the request answers 503).
        """
        return self._sqlite.readParts(key, self.clock.seconds())
