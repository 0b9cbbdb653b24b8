# -*- test-case-name: tests.db.test_conformance,tests.db.test_persistent -*-
"""
Sessions in an SQLite file, through C{twisted.enterprise.adbapi}: every
query runs in adbapi's thread, on one connection, so the reactor never waits
for the disk and one session's changes never interleave.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar, cast

from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..errors import DatabaseError, SessionLimitError
from ..ids import redact
from ..records import SessionChanges, SessionInfo, StoredSession
from ._apply import applyChanges
from ._persistent import (
    Expiry,
    PersistentDatabase,
    Saved,
    decodeFields,
    encodeFields,
    lifetimeOf,
)

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


def _open(path: str) -> list[Expiry]:
    """
    Open (or create) the file, check it, and list the sessions' expiries;
    blocking, once, at start-up.
    """
    try:
        connection = sqlite3.connect(path)
        try:
            (check,) = connection.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            connection.executescript(_SCHEMA)
            connection.execute("PRAGMA journal_mode=WAL")
            rows = connection.execute(
                "SELECT key, expires FROM txsessions WHERE expires IS NOT NULL"
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as e:
        raise DatabaseError(
            f"cannot open the SQLite session database {path!r}: {e}"
        ) from e
    return [(key, expires) for key, expires in rows]


class _SQLiteBackend:
    def __init__(self, path: str, maxSessions: int) -> None:
        self.initialExpirations = _open(path)
        self._maxSessions = maxSessions
        self._pool = adbapi.ConnectionPool(
            "sqlite3", path, check_same_thread=False, cp_min=1, cp_max=1
        )

    def _run(self, work: Callable[[Any], T]) -> Deferred[T]:
        return cast("Deferred[T]", self._pool.runInteraction(work))

    def load(self, key: str) -> Deferred[StoredSession | None]:
        def load(txn: Any) -> StoredSession | None:
            row = txn.execute(
                "SELECT created, expires, fields FROM txsessions WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            try:
                return StoredSession(lifetimeOf(row[0], row[1]), decodeFields(row[2]))
            except ValueError:
                _log.warn("session {key} is corrupt; ignored", key=redact(key))
                return None

        return self._run(load)

    def save(self, key: str, changes: SessionChanges, now: float) -> Deferred[Saved]:
        def save(txn: Any) -> Saved:
            row = txn.execute(
                "SELECT created, expires, fields FROM txsessions WHERE key = ?", (key,)
            ).fetchone()
            before = None if row is None else row[1]
            if changes.create:
                assert changes.lifetime is not None
                if self._maxSessions:
                    (n,) = txn.execute("SELECT COUNT(*) FROM txsessions").fetchone()
                    if n >= self._maxSessions:
                        raise SessionLimitError(f"{self._maxSessions} sessions live")
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
                "INSERT OR REPLACE INTO txsessions (key, created, expires, fields) "
                "VALUES (?, ?, ?, ?)",
                (key, lifetime.createdAt, lifetime.expiresAt, encodeFields(fields)),
            )
            return Saved(result, before, lifetime.expiresAt)

        return self._run(save)

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

        return self._run(rename)

    def destroy(self, key: str) -> Deferred[tuple[bool, float | None]]:
        def destroy(txn: Any) -> tuple[bool, float | None]:
            row = txn.execute(
                "DELETE FROM txsessions WHERE key = ? RETURNING expires", (key,)
            ).fetchone()
            return (False, None) if row is None else (True, row[0])

        return self._run(destroy)

    def destroyAll(self) -> Deferred[list[tuple[str, float | None]]]:
        def destroyAll(txn: Any) -> list[tuple[str, float | None]]:
            rows = txn.execute(
                "DELETE FROM txsessions RETURNING key, expires"
            ).fetchall()
            return [(key, expires) for key, expires in rows]

        return self._run(destroyAll)

    def count(self, now: float) -> Deferred[int]:
        def count(txn: Any) -> int:
            (n,) = txn.execute(
                "SELECT COUNT(*) FROM txsessions WHERE expires IS NULL OR expires > ?",
                (now,),
            ).fetchone()
            return int(n)

        return self._run(count)

    def sessions(self, prefix: str, now: float) -> Deferred[list[SessionInfo]]:
        def sessions(txn: Any) -> list[SessionInfo]:
            found: list[SessionInfo] = []
            rows = txn.execute(
                "SELECT key, created, expires, fields FROM txsessions "
                "WHERE substr(key, 1, ?) = ? AND (expires IS NULL OR expires > ?)",
                (len(prefix), prefix, now),
            )
            for key, created, expires, fields in rows:
                try:
                    size = SessionInfo.sizeOf(decodeFields(fields))
                    found.append(SessionInfo(key, lifetimeOf(created, expires), size))
                except ValueError:
                    pass
            return found

        return self._run(sessions)

    def purgeExpired(self, now: float) -> Deferred[list[Expiry]]:
        def purge(txn: Any) -> list[Expiry]:
            rows = txn.execute(
                "DELETE FROM txsessions WHERE expires <= ? RETURNING key, expires",
                (now,),
            ).fetchall()
            return [(key, expires) for key, expires in rows]

        return self._run(purge)

    def deleteIfExpired(self, key: str, now: float) -> Deferred[bool]:
        def delete(txn: Any) -> bool:
            txn.execute(
                "DELETE FROM txsessions WHERE key = ? AND expires <= ?", (key, now)
            )
            return bool(txn.rowcount)

        return self._run(delete)

    def close(self) -> Deferred[None]:
        self._pool.close()
        return succeed(None)


class SQLiteDatabase(PersistentDatabase):
    """
    Sessions in an SQLite file.  Sessions found there when it opens are
    expired on schedule again; those whose time passed while the server was
    down are removed on the reactor's first turn, with
    L{DestroyReason.expired} events.
    """

    def __init__(
        self, path: str, clock: IReactorTime | None = None, maxSessions: int = 0
    ) -> None:
        """
        @param path: the file, created if need be.
        @param clock: what schedules expirations; the global reactor when
            C{None}.
        @param maxSessions: the most sessions it holds (0: no limit); once
            full, new sessions are refused with L{SessionLimitError}.
        @raise DatabaseError: when the file cannot be opened or is corrupt;
            the message names it.
        """
        super().__init__(_SQLiteBackend(path, maxSessions), clock, f"sqlite:{path}")
