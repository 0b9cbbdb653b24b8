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


@implementer(IDatabase)
class MemoryDatabase:
    """
    Sessions held in two C{dict}s keyed by store key, their lifetimes and
    their values (each as JSON text): no object per session besides those.
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
        self._lifetimes: dict[str, Lifetime] = {}
        self._values: dict[str, dict[str, str]] = {}
        self._maxSessions = maxSessions
        self._listeners = Listeners()
        self._expirations = ExpirationScheduler(clock, self._expire)

    def load(self, key: str) -> Deferred[StoredSession | None]:
        """
        See L{IDatabase.load}.
        """
        lifetime = self._lifetimes.get(key)
        if lifetime is None or lifetime.hasExpired(self._clock.seconds()):
            return succeed(None)
        return succeed(StoredSession(lifetime, dict(self._values[key])))

    def save(
        self, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        """
        See L{IDatabase.save}.
        """
        lifetime = self._lifetimes.get(key)
        if changes.create:
            assert changes.lifetime is not None, "a new session needs a lifetime"
            if self._maxSessions and len(self._lifetimes) >= self._maxSessions:
                return fail(SessionLimitError(f"{self._maxSessions} sessions live"))
            if lifetime is not None:
                self._unschedule(key, lifetime)
            self._lifetimes[key] = changes.lifetime
            self._values[key] = {}
            self._schedule(key, changes.lifetime)
        elif lifetime is None or lifetime.hasExpired(self._clock.seconds()):
            return succeed(None)
        elif changes.lifetime is not None:
            self._unschedule(key, lifetime)
            self._lifetimes[key] = changes.lifetime
            self._schedule(key, changes.lifetime)
        return succeed(applyChanges(self._values[key], changes))

    def rename(self, oldKey: str, newKey: str) -> Deferred[bool]:
        """
        See L{IDatabase.rename}.
        """
        lifetime = self._lifetimes.get(oldKey)
        if lifetime is None or lifetime.hasExpired(self._clock.seconds()):
            return succeed(False)
        del self._lifetimes[oldKey]
        self._unschedule(oldKey, lifetime)
        self._lifetimes[newKey] = lifetime
        self._values[newKey] = self._values.pop(oldKey)
        self._schedule(newKey, lifetime)
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
        return succeed(sum(self._remove(key, reason) for key in list(self._lifetimes)))

    def count(self) -> Deferred[int]:
        """
        See L{IDatabase.count}.
        """
        now = self._clock.seconds()
        return succeed(
            sum(not lifetime.hasExpired(now) for lifetime in self._lifetimes.values())
        )

    def sessions(self, prefix: str = "") -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessions}.
        """
        now = self._clock.seconds()
        return succeed(
            [
                SessionInfo(key, lifetime, SessionInfo.sizeOf(self._values[key]))
                for key, lifetime in self._lifetimes.items()
                if key.startswith(prefix) and not lifetime.hasExpired(now)
            ]
        )

    def purgeExpired(self) -> Deferred[int]:
        """
        See L{IDatabase.purgeExpired}.
        """
        now = self._clock.seconds()
        expired = [
            key for key, lifetime in self._lifetimes.items() if lifetime.hasExpired(now)
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
        lifetime = self._lifetimes.pop(key, None)
        if lifetime is None:
            return False
        del self._values[key]
        self._unschedule(key, lifetime)
        self._listeners.tell(key, reason)
        return True

    def _expire(self, key: str) -> None:
        lifetime = self._lifetimes.get(key)
        if lifetime is not None and lifetime.hasExpired(self._clock.seconds()):
            del self._lifetimes[key], self._values[key]
            self._listeners.tell(key, DestroyReason.expired)

    def _schedule(self, key: str, lifetime: Lifetime) -> None:
        if lifetime.expiresAt is not None:
            self._expirations.add(key, lifetime.expiresAt)

    def _unschedule(self, key: str, lifetime: Lifetime) -> None:
        if lifetime.expiresAt is not None:
            self._expirations.remove(key, lifetime.expiresAt)
