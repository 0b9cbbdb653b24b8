# -*- test-case-name: tests.db.test_conformance,tests.db.test_persistent -*-
"""
Sessions in an LMDB environment (the design BoltDB follows), with the
C{lmdb} package.

Reads run inline: LMDB serves them from memory-mapped pages, about a
microsecond each here (see the README).  Writes, which wait for the disk,
run in a writer thread (L{txsessions.db._writer}), several to a
transaction; LMDB lets one writer in at a time, across processes, so one
session's changes never interleave.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.logger import Logger

from .._fields import LoadedParts, storedRecord
from ..errors import DatabaseError, SessionLimitError
from ..ids import redact
from ..records import SessionChanges, SessionInfo, StoredSession, ownerOf, touchesOwner
from ._apply import applyChanges
from ._persistent import (
    Expiry,
    PersistentDatabase,
    Saved,
    changeSize,
    decodeRecord,
    encodeRecord,
    expiryOf,
    recordParts,
)
from ._threads import Threads
from ._writer import Batching, Writer

try:
    import lmdb
except ImportError as e:
    from . import missingExtra

    raise missingExtra("lmdb", e) from None

_log = Logger()

T = TypeVar("T")

MAP_SIZE = 1 << 30
"""
The largest the environment may grow, in bytes (1 GiB), unless
L{LMDBDatabase} is told otherwise.
"""

HIGH_WATER = 0.9
"""
How full the map may be, as a fraction of its size, before new sessions are
refused (L{SessionLimitError}): removing a session needs fresh pages too
(LMDB copies what it changes), so a full map could free none, and would
refuse every new session for good.
"""

MIN_ROOM = 2 << 20
"""
The least room, in bytes, kept for removing sessions however small the map:
a batch of 256 removals may copy as many pages (1 MiB of 4 KiB pages), and
the branches above them.
"""


def _keyOf(rawKey: bytes) -> str | None:
    """
    @return: a record's key as text, or C{None} when it is not UTF-8 (no
        key of ours: another program's, or damage).
    """
    try:
        return rawKey.decode()
    except UnicodeDecodeError:
        return None


def _ownerEntry(owner: str, key: str) -> bytes:
    """
    @return: the owner index's entry for C{key}, owned by C{owner}: the
        owner, NUL, the key (owners' entries sort together).
    """
    return owner.encode() + b"\x00" + key.encode()


def _recordOwner(data: bytes | None) -> str | None:
    """
    @return: the owner of a stored record, or C{None} (none, or corrupt).
    """
    if data is None:
        return None
    try:
        return ownerOf(decodeRecord(data).values)
    except ValueError:
        return None


def _readable(cursor: Any) -> Iterator[tuple[bytes, StoredSession]]:
    """
    The records a cursor reaches, decoded, from where it stands; corrupt
    ones are skipped.
    """
    for rawKey, data in cursor:
        try:
            yield rawKey, decodeRecord(data)
        except ValueError:
            continue


def _liveIn(txn: Any, db: Any, now: float, skip: bytes = b"") -> int:
    """
    @return: how many sessions (other than C{skip}) are live at C{now}; the
        expired ones are found by their expiry alone.
    """
    live = 0
    for rawKey, data in txn.cursor(db=db).iternext():
        if rawKey == skip:
            continue
        try:
            expires = expiryOf(data)
        except ValueError:
            continue
        live += expires is None or now < expires
    return live


READER_CHECK_INTERVAL = 60.0
"""
How often, in seconds, the writer frees the reader slots of processes that
died while reading (L{clearStaleReaders}).
"""


def clearStaleReaders(env: Any) -> None:
    """
    Free the reader slots of processes that died in a read transaction
    (killed, say): each keeps the pages it read from reuse, and the file
    grows until no write fits in the map.  LMDB itself frees them only
    when no process has the environment open.
    """
    cleared = env.reader_check()
    if cleared:
        _log.warn("freed {n} reader slots of processes that died", n=cleared)


class _LMDBTransactions:
    """
    Write transactions, each change in a nested transaction of its own.
    LMDB lets one writer in at a time across processes; waiting for it has
    no bound, so a change's deadline is checked again before its commit.
    A write transaction belongs to the thread that began it: they run
    wholly in the writer thread.

    @ivar busyWait: 5 ms at most: the write lock is a mutex shared across
        processes, which a waiting process blocks on and gets when it is
        released, so the gap is not for them but for company: the callers
        of the last batch join the next together (it ends as soon as they
        have), one commit and one hand-over to the writer thread for all of
        them instead of two half batches.
    """

    inline = False
    busyWait = 0.005

    def __init__(self, env: Any, db: Any) -> None:
        self._env = env
        self._db = db
        self._nextReaderCheck = 0.0

    def begin(self, wait: float) -> Any:
        now = time.monotonic()
        if now >= self._nextReaderCheck:
            self._nextReaderCheck = now + READER_CHECK_INTERVAL
            clearStaleReaders(self._env)
        return self._env.begin(write=True, db=self._db)

    def nested(self, txn: Any, work: Callable[[Any], T]) -> T:
        child = self._env.begin(write=True, parent=txn, db=self._db)
        try:
            result = work(child)
        except BaseException:
            child.abort()
            raise
        child.commit()
        return result

    def commit(self, txn: Any) -> None:
        txn.commit()

    def abort(self, txn: Any) -> None:
        txn.abort()

    def close(self) -> None:
        pass


class _LMDBBackend:
    def __init__(
        self,
        path: str,
        threads: IReactorThreads,
        maxSessions: int,
        timeout: float | None,
        batching: Batching,
        mapSize: int,
    ) -> None:
        self._maxSessions = maxSessions
        try:
            self._env = lmdb.open(path, map_size=mapSize, max_dbs=2)
            self._db = self._env.open_db(b"txsessions")
            # The owner index: a key per owned session (L{_ownerEntry}).
            self._owners = self._env.open_db(b"txsessions-owners")
            self._pageSize: int = self._env.stat()["psize"]
            self.initialExpirations = self._scan()
        except (lmdb.Error, OSError) as e:
            raise DatabaseError(
                f"cannot open the LMDB session database {path!r}: {e}"
            ) from e
        self._threads = Threads(
            Writer(
                _LMDBTransactions(self._env, self._db),
                threads,
                timeout,
                batching,
                "txsessions-lmdb",
            ),
            threads,
            # Long reads run in a read-only transaction in a thread of their
            # own: LMDB readers never block its writer.
            "txsessions-lmdb-r",
            self._env.close,
        )
        self.writer = self._threads.writer

    def _scan(self) -> list[Expiry]:
        expiries: list[Expiry] = []
        corrupt: list[bytes] = []
        with self._env.begin(db=self._db) as txn:
            for rawKey, data in txn.cursor():
                try:
                    # A key that is not UTF-8 is as corrupt as its record.
                    key = rawKey.decode()
                    expiresAt = decodeRecord(data).lifetime.expiresAt
                except ValueError:
                    corrupt.append(rawKey)
                    continue
                if expiresAt is not None:
                    expiries.append((key, expiresAt))
        if corrupt:
            _log.warn("removed {n} corrupt sessions", n=len(corrupt))
            with self._env.begin(write=True, db=self._db) as txn:
                for rawKey in corrupt:
                    txn.delete(rawKey)
        return expiries

    def readParts(self, key: str, now: float) -> LoadedParts | None:
        """
        Read a session in the reactor thread: LMDB's reads never wait for
        a lock, and from the page cache cost less than handing them to a
        thread would.

        @return: when the session was created and expires, and its fields
            (L{recordParts}); C{None} when it is absent, corrupt or ended
            at C{now}.
        @raise lmdb.Error: when LMDB failed.
        """
        with self._env.begin(db=self._db) as txn:
            data = txn.get(key.encode())
        if data is None:
            return None
        try:
            parts = recordParts(data)
        except ValueError:
            _log.warn("session {key} is corrupt; ignored", key=redact(key))
            return None
        expiresAt = parts[1]
        return None if expiresAt is not None and now >= expiresAt else parts

    def _readInThread(self, work: Callable[[Any], T]) -> Deferred[T]:
        def inTransaction() -> T:
            with self._env.begin(db=self._db) as txn:
                return work(txn)

        return self._threads.read(inTransaction)

    def load(self, key: str, now: float) -> Deferred[StoredSession | None]:
        try:
            return succeed(storedRecord(self.readParts(key, now)))
        except lmdb.Error:
            return fail()

    def save(self, key: str, changes: SessionChanges, now: float) -> Deferred[Saved]:
        def save(txn: Any) -> Saved:
            rawKey = key.encode()
            data = txn.get(rawKey)
            stored = None
            if data is not None:
                try:
                    stored = decodeRecord(data)
                except ValueError:
                    stored = None
            before = None if stored is None else stored.lifetime.expiresAt
            if changes.create:
                assert changes.lifetime is not None
                maxSessions = self._maxSessions
                if (
                    maxSessions
                    # entries is exact and costs nothing; it counts expired
                    # sessions too, so only when it says full are they told
                    # apart.
                    and txn.stat(self._db)["entries"] - (data is not None)
                    >= maxSessions
                    and _liveIn(txn, self._db, now, rawKey) >= maxSessions
                ):
                    raise SessionLimitError(f"{maxSessions} sessions live")
                lifetime, fields = changes.lifetime, {}
            elif stored is None or stored.lifetime.hasExpired(now):
                return Saved(None, before, before)
            else:
                lifetime = changes.lifetime or stored.lifetime
                fields = dict(stored.values)
            result = applyChanges(fields, changes)
            record = encodeRecord(lifetime, fields)
            if changes.create or len(record) > len(data):  # a new or growing one
                self._refuseWhenNearlyFull(txn)
            txn.put(rawKey, record)
            if touchesOwner(changes):
                owner = None if stored is None else ownerOf(stored.values)
                self._reindex(txn, key, owner, ownerOf(fields))
            return Saved(result, before, lifetime.expiresAt)

        return self.writer.submit(save, changeSize(changes))

    def _refuseWhenNearlyFull(self, txn: Any) -> None:
        """
        Refuse a new session, a session that grows or a rename once the map
        is past L{HIGH_WATER}, or would leave less than L{MIN_ROOM}, keeping
        the rest for what removes sessions.

        @raise SessionLimitError: when it is.
        """
        mapSize = self._env.info()["map_size"]
        used = 0
        for db in (self._db, self._owners):
            stat = txn.stat(db)
            pages = stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
            used += pages * self._pageSize
        if used >= min(mapSize * HIGH_WATER, mapSize - MIN_ROOM):
            raise SessionLimitError(
                f"the LMDB map is nearly full ({used} of {mapSize} bytes);"
                " the rest is kept for removing sessions"
            )

    def rename(
        self, oldKey: str, newKey: str, now: float
    ) -> Deferred[tuple[bool, float | None]]:
        def rename(txn: Any) -> tuple[bool, float | None]:
            data = txn.get(oldKey.encode())
            try:
                stored = None if data is None else decodeRecord(data)
            except ValueError:
                stored = None
            if stored is None or stored.lifetime.hasExpired(now):
                return False, None
            self._refuseWhenNearlyFull(txn)
            txn.put(newKey.encode(), data)
            txn.delete(oldKey.encode())
            owner = ownerOf(stored.values)
            self._reindex(txn, oldKey, owner, None)
            self._reindex(txn, newKey, None, owner)
            return True, stored.lifetime.expiresAt

        return self.writer.submit(rename)

    def destroy(self, key: str) -> Deferred[tuple[bool, float | None]]:
        def destroy(txn: Any) -> tuple[bool, float | None]:
            data = txn.pop(key.encode())
            if data is None:
                return False, None
            try:
                stored = decodeRecord(data)
            except ValueError:
                return True, None  # corrupt: no owner, no lifetime
            self._reindex(txn, key, ownerOf(stored.values), None)
            return True, stored.lifetime.expiresAt

        return self.writer.submit(destroy)

    def destroyAll(self) -> Deferred[list[tuple[str, float | None]]]:
        def destroyAll(txn: Any) -> list[tuple[str, float | None]]:
            removed: list[tuple[str, float | None]] = []
            for rawKey, data in txn.cursor():
                key = _keyOf(rawKey)
                if key is None:
                    continue  # dropped all the same, but no session of ours
                try:
                    expiresAt = expiryOf(data)
                except ValueError:
                    expiresAt = None
                removed.append((key, expiresAt))
            txn.drop(self._db, delete=False)
            txn.drop(self._owners, delete=False)
            return removed

        return self.writer.submit(destroyAll)

    def count(self, now: float) -> Deferred[int]:
        return self.writer.flush().addCallback(
            lambda _: self._readInThread(lambda txn: _liveIn(txn, self._db, now))
        )

    def sessions(self, prefix: str, now: float) -> Deferred[list[SessionInfo]]:
        def sessions(txn: Any) -> list[SessionInfo]:
            found: list[SessionInfo] = []
            start = prefix.encode()
            cursor = txn.cursor()
            if not cursor.set_range(start):
                return found
            for rawKey, stored in _readable(cursor):
                if not rawKey.startswith(start):
                    break
                key = _keyOf(rawKey)
                if key is not None and not stored.lifetime.hasExpired(now):
                    found.append(SessionInfo.of(key, stored))
            return found

        return self.writer.flush().addCallback(lambda _: self._readInThread(sessions))

    def sessionsOf(self, owner: str, now: float) -> Deferred[list[SessionInfo]]:
        def sessionsOf(txn: Any) -> list[SessionInfo]:
            found: list[SessionInfo] = []
            start = owner.encode() + b"\x00"
            cursor = txn.cursor(db=self._owners)
            if not cursor.set_range(start):
                return found
            for entry in cursor.iternext(values=False):
                if not entry.startswith(start):
                    break
                rawKey = entry[len(start) :]
                key = _keyOf(rawKey)
                data = None if key is None else txn.get(rawKey)
                try:
                    stored = None if data is None else decodeRecord(data)
                except ValueError:
                    continue
                if (
                    key is not None
                    and stored is not None
                    and not stored.lifetime.hasExpired(now)
                    and ownerOf(stored.values) == owner
                ):
                    found.append(SessionInfo.of(key, stored))
            return found

        return self.writer.flush().addCallback(lambda _: self._readInThread(sessionsOf))

    def _reindex(
        self, txn: Any, key: str, before: str | None, after: str | None
    ) -> None:
        """
        Move C{key}'s owner index entry from owner C{before} to C{after}
        (C{None}: no owner), in the transaction C{txn}.
        """
        if before == after:
            return
        if before is not None:
            txn.delete(_ownerEntry(before, key), db=self._owners)
        if after is not None:
            txn.put(_ownerEntry(after, key), b"", db=self._owners)

    def purgeExpired(self, now: float) -> Deferred[list[Expiry]]:
        def purge(txn: Any) -> list[Expiry]:
            removed: list[Expiry] = []
            for rawKey, data in txn.cursor():
                key = _keyOf(rawKey)
                try:
                    expiresAt = expiryOf(data)
                except ValueError:
                    continue
                if key is not None and expiresAt is not None and now >= expiresAt:
                    removed.append((key, expiresAt))
            for key, _ in removed:
                self._reindex(txn, key, _recordOwner(txn.pop(key.encode())), None)
            return removed

        return self.writer.submit(purge)

    def deleteIfExpired(self, key: str, now: float) -> Deferred[bool]:
        def delete(txn: Any) -> bool:
            data = txn.get(key.encode())
            if data is None:
                return False
            try:
                expiresAt = expiryOf(data)
                expired = expiresAt is not None and now >= expiresAt
            except ValueError:
                expired = True
            if expired:
                txn.delete(key.encode())
                self._reindex(txn, key, _recordOwner(data), None)
            return expired

        return self.writer.submit(delete)

    def close(self) -> Deferred[None]:
        return self._threads.close()

    def closeNow(self) -> None:
        self._threads.closeNow()


class LMDBDatabase(PersistentDatabase):
    """
    Sessions in an LMDB environment (a directory).  Sessions found there
    when it opens are expired on schedule again; those whose time passed
    while the server was down are removed on the reactor's first turn, with
    L{DestroyReason.expired} events.

    Changes are committed by one writer thread, those that arrive while a
    transaction is being written together in the next (group commit: see
    L{Batching}).  Several processes may share the environment.
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
        mapSize: int | None = None,
    ) -> None:
        """
        @param path: the environment's directory, created if need be.
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
        @param mapSize: the largest the environment may grow, in bytes
            (L{MAP_SIZE} when C{None}); once it is L{HIGH_WATER} full (or
            has less than L{MIN_ROOM} left), new sessions are refused with
            L{SessionLimitError}, the rest kept for removing sessions.  An
            environment another process opened larger is as large as that.
        @raise DatabaseError: when the environment cannot be opened; the
            message names it.
        """
        if threads is None:
            from twisted.internet import reactor

            threads = cast(IReactorThreads, reactor)
        backend = _LMDBBackend(
            path,
            threads,
            maxSessions,
            timeout,
            batching or Batching(),
            MAP_SIZE if mapSize is None else mapSize,
        )
        super().__init__(backend, clock, f"lmdb:{path}")
        self._lmdb = backend

    def loadAtOnce(self, key: str) -> LoadedParts | None:
        """
        L{load}, answered at once: the lifetime's fields and the session's
        fields, without a L{Deferred} or a L{StoredSession} on the way.
        The request path calls it in load's place (see
        L{txsessions._calls.answeredAtOnce}), as SQLite's does.

        @param key: a store key.
        @return: when the session was created and expires, and its fields;
            C{None} when no live session has that key.
        @raise lmdb.Error: when LMDB failed (the request answers 503).
        """
        return self._lmdb.readParts(key, self.clock.seconds())
