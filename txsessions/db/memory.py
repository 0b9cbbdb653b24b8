# -*- test-case-name: tests.db.test_conformance -*-
"""
The default database: sessions in this process's memory, expired on the
reactor's clock.  Fast, and gone when the process ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from ..errors import SessionLimitError
from ..interfaces import DestroyListener, IDatabase
from ..lifetime import ExpirationScheduler
from ..listeners import Listeners
from ..records import (
    DestroyReason,
    Lifetime,
    SessionChanges,
    SessionInfo,
    StoredSession,
)
from ._apply import applyChanges


class _Record:
    __slots__ = ("lifetime", "values")

    def __init__(self, lifetime: Lifetime, values: dict[str, str]) -> None:
        self.lifetime = lifetime
        self.values = values


@implementer(IDatabase)
class MemoryDatabase:
    """
    Sessions held in a C{dict}, each value as JSON text.
    """

    def __init__(self, clock: IReactorTime | None = None, maxSessions: int = 0) -> None:
        """
        @param clock: what schedules expirations; the global reactor when
            C{None}.
        @param maxSessions: the most sessions it holds (0: no limit); once
            full, new sessions are refused with L{SessionLimitError}.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._maxSessions = maxSessions
        self._listeners = Listeners()
        self._expirations = ExpirationScheduler(clock, self._expire)

    def load(self, key: str) -> Deferred[StoredSession | None]:
        """
        See L{IDatabase.load}.
        """
        record = self._records.get(key)
        if record is None or record.lifetime.hasExpired(self._clock.seconds()):
            return succeed(None)
        return succeed(StoredSession(record.lifetime, dict(record.values)))

    def save(
        self, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        """
        See L{IDatabase.save}.
        """
        record = self._records.get(key)
        if changes.create:
            assert changes.lifetime is not None, "a new session needs a lifetime"
            if self._maxSessions and len(self._records) >= self._maxSessions:
                return fail(SessionLimitError(f"{self._maxSessions} sessions live"))
            if record is not None:
                self._unschedule(key, record.lifetime)
            record = self._records[key] = _Record(changes.lifetime, {})
            self._schedule(key, changes.lifetime)
        elif record is None or record.lifetime.hasExpired(self._clock.seconds()):
            return succeed(None)
        elif changes.lifetime is not None:
            self._unschedule(key, record.lifetime)
            record.lifetime = changes.lifetime
            self._schedule(key, changes.lifetime)
        return succeed(applyChanges(record.values, changes))

    def rename(self, oldKey: str, newKey: str) -> Deferred[bool]:
        """
        See L{IDatabase.rename}.
        """
        record = self._records.get(oldKey)
        if record is None or record.lifetime.hasExpired(self._clock.seconds()):
            return succeed(False)
        del self._records[oldKey]
        self._unschedule(oldKey, record.lifetime)
        self._records[newKey] = record
        self._schedule(newKey, record.lifetime)
        self._listeners.tell(oldKey, DestroyReason.regenerated)
        return succeed(True)

    def destroy(self, key: str, reason: DestroyReason) -> Deferred[bool]:
        """
        See L{IDatabase.destroy}.
        """
        return succeed(self._remove(key, reason))

    def destroyAll(self, reason: DestroyReason) -> Deferred[int]:
        """
        See L{IDatabase.destroyAll}.
        """
        return succeed(sum(self._remove(key, reason) for key in list(self._records)))

    def count(self) -> Deferred[int]:
        """
        See L{IDatabase.count}.
        """
        now = self._clock.seconds()
        return succeed(
            sum(
                not record.lifetime.hasExpired(now) for record in self._records.values()
            )
        )

    def sessions(self, prefix: str = "") -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessions}.
        """
        now = self._clock.seconds()
        return succeed(
            [
                SessionInfo(key, record.lifetime, SessionInfo.sizeOf(record.values))
                for key, record in self._records.items()
                if key.startswith(prefix) and not record.lifetime.hasExpired(now)
            ]
        )

    def purgeExpired(self) -> Deferred[int]:
        """
        See L{IDatabase.purgeExpired}.
        """
        now = self._clock.seconds()
        expired = [
            key
            for key, record in self._records.items()
            if record.lifetime.hasExpired(now)
        ]
        return succeed(sum(self._remove(key, DestroyReason.expired) for key in expired))

    def listen(self, listener: DestroyListener) -> Callable[[], None]:
        """
        See L{IDatabase.listen}.
        """
        return self._listeners.add(listener)

    def close(self) -> Deferred[None]:
        """
        See L{IDatabase.close}.  The sessions stay; their expirations stop.
        """
        self._expirations.close()
        return succeed(None)

    def _remove(self, key: str, reason: DestroyReason) -> bool:
        record = self._records.pop(key, None)
        if record is None:
            return False
        self._unschedule(key, record.lifetime)
        self._listeners.tell(key, reason)
        return True

    def _expire(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None and record.lifetime.hasExpired(self._clock.seconds()):
            del self._records[key]
            self._listeners.tell(key, DestroyReason.expired)

    def _schedule(self, key: str, lifetime: Lifetime) -> None:
        if lifetime.expiresAt is not None:
            self._expirations.add(key, lifetime.expiresAt)

    def _unschedule(self, key: str, lifetime: Lifetime) -> None:
        if lifetime.expiresAt is not None:
            self._expirations.remove(key, lifetime.expiresAt)
