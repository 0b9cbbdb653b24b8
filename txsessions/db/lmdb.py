# -*- test-case-name: tests.db.test_conformance,tests.db.test_persistent -*-
"""
Sessions in an LMDB environment (the design BoltDB follows), with the
C{lmdb} package.

Reads run inline: LMDB serves them from memory-mapped pages, about a
microsecond each here (see the README).  Writes, which wait for the disk,
run in a thread of their own; LMDB lets one writer in at a time, so one
session's changes never interleave.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import lmdb
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from ..errors import DatabaseError, SessionLimitError
from ..ids import redact
from ..records import Lifetime, SessionChanges, SessionInfo, StoredSession
from ._apply import applyChanges
from ._persistent import Expiry, PersistentDatabase, Saved, decodeFields, lifetimeOf

_log = Logger()

T = TypeVar("T")

MAP_SIZE = 1 << 30
"""
The largest the environment may grow, in bytes (1 GiB).
"""


def encodeRecord(lifetime: Lifetime, fields: dict[str, str]) -> bytes:
    """
    @return: a session as LMDB stores it: one JSON object.
    """
    record = {"c": lifetime.createdAt, "e": lifetime.expiresAt, "f": fields}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def decodeRecord(data: bytes) -> StoredSession:
    """
    @return: the session L{encodeRecord} stored.
    @raise ValueError: when C{data} is not such a record.
    """
    record = json.loads(data)
    if not isinstance(record, dict):
        raise ValueError("a session record is not an object")
    fields = decodeFields(json.dumps(record.get("f")))
    return StoredSession(lifetimeOf(record.get("c"), record.get("e")), fields)


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


class _LMDBBackend:
    def __init__(self, path: str, threads: IReactorThreads, maxSessions: int) -> None:
        self._maxSessions = maxSessions
        try:
            self._env = lmdb.open(path, map_size=MAP_SIZE, max_dbs=1)
            self._db = self._env.open_db(b"txsessions")
            self.initialExpirations = self._scan()
        except lmdb.Error as e:
            raise DatabaseError(
                f"cannot open the LMDB session database {path!r}: {e}"
            ) from e
        self._threads = threads
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="txsessions-lmdb")
        self._pool.start()
        # The writer thread must not outlive the reactor, closed or not.
        self._stopTrigger = cast(Any, threads).addSystemEventTrigger(
            "during", "shutdown", self._pool.stop
        )

    def _scan(self) -> list[Expiry]:
        expiries: list[Expiry] = []
        corrupt: list[bytes] = []
        with self._env.begin(db=self._db) as txn:
            for rawKey, data in txn.cursor():
                try:
                    expiresAt = decodeRecord(data).lifetime.expiresAt
                except ValueError:
                    corrupt.append(rawKey)
                    continue
                if expiresAt is not None:
                    expiries.append((rawKey.decode(), expiresAt))
        if corrupt:
            _log.warn("removed {n} corrupt sessions", n=len(corrupt))
            with self._env.begin(write=True, db=self._db) as txn:
                for rawKey in corrupt:
                    txn.delete(rawKey)
        return expiries

    def _read(self, key: str) -> StoredSession | None:
        with self._env.begin(db=self._db) as txn:
            data = txn.get(key.encode())
        if data is None:
            return None
        try:
            return decodeRecord(data)
        except ValueError:
            _log.warn("session {key} is corrupt; ignored", key=redact(key))
            return None

    def _transact(self, work: Callable[[Any], T], write: bool = True) -> Deferred[T]:
        """
        Run C{work} in a transaction in the writer thread: a write
        transaction, or a read-only one for a long read.
        """

        def inTransaction() -> T:
            with self._env.begin(write=write, db=self._db) as txn:
                return work(txn)

        return deferToThreadPool(cast(Any, self._threads), self._pool, inTransaction)

    def load(self, key: str) -> Deferred[StoredSession | None]:
        try:
            return succeed(self._read(key))
        except lmdb.Error:
            return fail()

    def save(self, key: str, changes: SessionChanges, now: float) -> Deferred[Saved]:
        def save(txn: Any) -> Saved:
            data = txn.get(key.encode())
            stored = None
            if data is not None:
                try:
                    stored = decodeRecord(data)
                except ValueError:
                    stored = None
            before = None if stored is None else stored.lifetime.expiresAt
            if changes.create:
                assert changes.lifetime is not None
                full = (
                    self._maxSessions
                    and txn.stat(self._db)["entries"] >= self._maxSessions
                )
                if full and data is None:
                    raise SessionLimitError(f"{self._maxSessions} sessions live")
                lifetime, fields = changes.lifetime, {}
            elif stored is None or stored.lifetime.hasExpired(now):
                return Saved(None, before, before)
            else:
                lifetime = changes.lifetime or stored.lifetime
                fields = dict(stored.values)
            result = applyChanges(fields, changes)
            txn.put(key.encode(), encodeRecord(lifetime, fields))
            return Saved(result, before, lifetime.expiresAt)

        return self._transact(save)

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
            txn.put(newKey.encode(), data)
            txn.delete(oldKey.encode())
            return True, stored.lifetime.expiresAt

        return self._transact(rename)

    def destroy(self, key: str) -> Deferred[tuple[bool, float | None]]:
        def destroy(txn: Any) -> tuple[bool, float | None]:
            data = txn.pop(key.encode())
            if data is None:
                return False, None
            try:
                return True, decodeRecord(data).lifetime.expiresAt
            except ValueError:
                return True, None

        return self._transact(destroy)

    def destroyAll(self) -> Deferred[list[tuple[str, float | None]]]:
        def destroyAll(txn: Any) -> list[tuple[str, float | None]]:
            removed: list[tuple[str, float | None]] = []
            for rawKey, data in txn.cursor():
                try:
                    expiresAt = decodeRecord(data).lifetime.expiresAt
                except ValueError:
                    expiresAt = None
                removed.append((rawKey.decode(), expiresAt))
            txn.drop(self._db, delete=False)
            return removed

        return self._transact(destroyAll)

    def count(self, now: float) -> Deferred[int]:
        def count(txn: Any) -> int:
            return sum(
                not stored.lifetime.hasExpired(now)
                for _, stored in _readable(txn.cursor())
            )

        return self._transact(count, write=False)

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
                if not stored.lifetime.hasExpired(now):
                    found.append(SessionInfo.of(rawKey.decode(), stored))
            return found

        return self._transact(sessions, write=False)

    def purgeExpired(self, now: float) -> Deferred[list[Expiry]]:
        def purge(txn: Any) -> list[Expiry]:
            removed: list[Expiry] = []
            for rawKey, stored in _readable(txn.cursor()):
                lifetime = stored.lifetime
                if lifetime.expiresAt is not None and lifetime.hasExpired(now):
                    removed.append((rawKey.decode(), lifetime.expiresAt))
            for key, _ in removed:
                txn.delete(key.encode())
            return removed

        return self._transact(purge)

    def deleteIfExpired(self, key: str, now: float) -> Deferred[bool]:
        def delete(txn: Any) -> bool:
            data = txn.get(key.encode())
            if data is None:
                return False
            try:
                expired = decodeRecord(data).lifetime.hasExpired(now)
            except ValueError:
                expired = True
            if expired:
                txn.delete(key.encode())
            return expired

        return self._transact(delete)

    def close(self) -> Deferred[None]:
        if self._stopTrigger is not None:
            cast(Any, self._threads).removeSystemEventTrigger(self._stopTrigger)
            self._stopTrigger = None
            self._pool.stop()
            self._env.close()
        return succeed(None)


class LMDBDatabase(PersistentDatabase):
    """
    Sessions in an LMDB environment (a directory).  Sessions found there
    when it opens are expired on schedule again; those whose time passed
    while the server was down are removed on the reactor's first turn, with
    L{DestroyReason.expired} events.
    """

    def __init__(
        self,
        path: str,
        clock: IReactorTime | None = None,
        threads: IReactorThreads | None = None,
        maxSessions: int = 0,
    ) -> None:
        """
        @param path: the environment's directory, created if need be.
        @param clock: what schedules expirations; the global reactor when
            C{None}.
        @param maxSessions: the most sessions it holds (0: no limit); once
            full, new sessions are refused with L{SessionLimitError}.
        @param threads: what delivers the write threads' results; the global
            reactor when C{None}.
        @raise DatabaseError: when the environment cannot be opened; the
            message names it.
        """
        if threads is None:
            from twisted.internet import reactor

            threads = cast(IReactorThreads, reactor)
        super().__init__(
            _LMDBBackend(path, threads, maxSessions), clock, f"lmdb:{path}"
        )
