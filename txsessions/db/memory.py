# -*- test-case-name: tests.db.test_conformance -*-
"""
The default database: sessions in this process's memory, expired on the
reactor's clock.  Fast, and gone when the process ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from .._fields import LoadedParts, changeParts, storedRecord
from ..errors import DatabaseError, SessionLimitError
from ..interfaces import DestroyListener, IDatabase
from ..lifetime import ExpirationScheduler
from ..listeners import Listeners
from ..records import (
    OWNER_FIELD,
    DestroyReason,
    Lifetime,
    SessionChanges,
    SessionInfo,
    StoredSession,
    ownerOf,
)
from ._apply import applyParts

_NEVER = math.inf
"""
The expiry time kept for a session without a lifetime.
"""


@implementer(IDatabase)
class MemoryDatabase:
    """
    Sessions held in three C{dict}s keyed by store key: when each was created
    and when it expires (floats, not a L{Lifetime} object each), and its
    fields (a C{dict} of JSON text each).

    On CPython up to 3.13 no session adds an object the garbage collector
    tracks (a dict of floats is not tracked, nor is a session's dict of
    strings), so creating sessions does not bring on a full collection, and
    one takes about 40 ms at a million sessions.  With a L{Lifetime} object
    per session it took 350 ms, and since Python starts one whenever the
    long-lived objects have grown by a quarter, a million sessions brought
    one on every 250,000 new sessions.  (CPython 3.14 tracks every dict.)
    """

    DEFAULT_MAX_SESSIONS = 100_000
    """
    The most live sessions a memory database holds unless told otherwise:
    enough for a busy single server, and a bound (some 100 MB with small
    sessions) on what a flood of new sessions can take.
    """

    def __init__(
        self,
        clock: IReactorTime | None = None,
        maxSessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        """
        @param clock: what schedules expirations; the global reactor when
            C{None}.
        @param maxSessions: the most live sessions it holds (0: no limit);
            once full, new sessions are refused with L{SessionLimitError}.
        @raise ValueError: when C{maxSessions} is not an C{int}, 0 or more.
        """
        if type(maxSessions) is not int or maxSessions < 0:
            raise ValueError(
                f"maxSessions must be a whole number, 0 or more, not {maxSessions!r}"
            )
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self._clock = clock
        self._createdAt: dict[str, float] = {}
        self._expiresAt: dict[str, float] = {}  # _NEVER: no lifetime
        self._fields: dict[str, dict[str, str]] = {}
        # The owner index: each owner's store keys, and each owned key's
        # owner.
        self._owned: dict[str, set[str]] = {}
        self._ownerOf: dict[str, str] = {}
        self._maxSessions = maxSessions
        # No session stored expires before this (a lower bound): until
        # then, every stored session is live and counting is len().
        self._earliest = _NEVER
        self._listeners = Listeners()
        self._expirations = ExpirationScheduler(clock, self._expire)

    def load(self, key: str) -> Deferred[StoredSession | None]:
        """
        See L{IDatabase.load}.
        """
        return succeed(storedRecord(self.loadAtOnce(key)))

    def loadAtOnce(self, key: str) -> LoadedParts | None:
        """
        L{load}, answered at once: what the request path calls in its place
        (see L{txsessions._calls.answeredAtOnce}), without a
        L{Deferred <twisted.internet.defer.Deferred>} or a L{StoredSession}
        on the way.

        @param key: a store key.
        @return: when the session was created and expires (the fields of
            its L{Lifetime}) and a copy of its fields, or C{None} when no
            live session has that key.
        """
        # _isLive and _lifetime, inline: this runs on every request.
        at = self._expiresAt.get(key)
        if at is None or self._clock.seconds() >= at:
            return None
        return (
            self._createdAt[key],
            None if at == _NEVER else at,
            dict(self._fields[key]),
        )

    def save(
        self, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        """
        See L{IDatabase.save}.
        """
        try:
            return succeed(self.saveAtOnce(key, *changeParts(changes)))
        except DatabaseError:
            return fail()

    def saveAtOnce(
        self,
        key: str,
        create: bool,
        times: tuple[float, float | None] | None,
        clear: bool,
        deleted: Collection[str],
        updated: Mapping[str, str],
        increments: Mapping[str, int],
    ) -> dict[str, int] | None:
        """
        L{save}, answered at once, given the fields of its L{SessionChanges}
        in order: what the request path calls in its place (see
        L{txsessions._calls.answeredAtOnce}), as building the record costs
        more than the save.

        @param key: a store key.
        @param times: the new lifetime's fields (when the session was
            created and when it expires), or C{None} when it stays.
        @return: the new value of each incremented key, or C{None} when no
            live session has that key (and C{create} is false).
        @raise SessionLimitError: when a new session would pass C{maxSessions}.
        @raise CounterRangeError: when a counter would leave the 64-bit
            integers (nothing is saved).
        """
        if create:
            assert times is not None, "a new session needs a lifetime"
            maxSessions = self._maxSessions
            if maxSessions:
                # _liveElsewhere, inline: this runs for every new session.
                now = self._clock.seconds()
                expiresAt = self._expiresAt
                live = len(expiresAt) if now < self._earliest else self._live()
                if expiresAt.get(key, now) > now:
                    live -= 1
                if live >= maxSessions:
                    raise SessionLimitError(f"{maxSessions} sessions live")
            fields: dict[str, str] = {}
            # Applied first: a refused change leaves no session behind.
            result = applyParts(fields, clear, deleted, updated, increments)
            self._keep(key, *times)
            self._fields[key] = fields
        else:
            # _isLive, inline: this runs on every write.
            at = self._expiresAt.get(key)
            if at is None or self._clock.seconds() >= at:
                return None
            fields = self._fields[key]
            result = applyParts(fields, clear, deleted, updated, increments)
            if times is not None:
                self._keep(key, *times)
        # Two lookups, not a call, for a session that has no owner and had
        # none: this runs on every save.
        if OWNER_FIELD in fields or key in self._ownerOf:
            self._index(key, ownerOf(fields))
        return result

    def rename(self, oldKey: str, newKey: str) -> Deferred[bool]:
        """
        See L{IDatabase.rename}.
        """
        if not self._isLive(oldKey):
            return succeed(False)
        createdAt, expiresAt = self._createdAt[oldKey], self._expiresAt[oldKey]
        fields = self._fields[oldKey]
        owner = self._ownerOf.get(oldKey)
        self._forget(oldKey)
        self._keep(newKey, createdAt, None if expiresAt == _NEVER else expiresAt)
        self._fields[newKey] = fields
        self._index(newKey, owner)
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
        return succeed(sum(self._remove(key, reason) for key in list(self._createdAt)))

    def count(self) -> Deferred[int]:
        """
        See L{IDatabase.count}.
        """
        return succeed(self._live())

    def sessions(self, prefix: str = "") -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessions}.
        """
        now = self._clock.seconds()
        return succeed(
            [
                SessionInfo.ofFields(key, self._lifetime(key), self._fields[key])
                for key, at in self._expiresAt.items()
                if now < at and key.startswith(prefix)
            ]
        )

    def sessionsOf(self, owner: str) -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessionsOf}.
        """
        now = self._clock.seconds()
        return succeed(
            [
                SessionInfo.ofFields(key, self._lifetime(key), self._fields[key])
                for key in self._owned.get(owner, ())
                if now < self._expiresAt[key]
            ]
        )

    def purgeExpired(self) -> Deferred[int]:
        """
        See L{IDatabase.purgeExpired}.
        """
        now = self._clock.seconds()
        expired = [key for key, at in self._expiresAt.items() if now >= at]
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

    def _live(self) -> int:
        """
        @return: how many sessions are live: without looking at each, unless
            one may have expired without its expiration having run yet.
        """
        now = self._clock.seconds()
        if now < self._earliest:
            return len(self._expiresAt)
        expiries = self._expiresAt.values()
        self._earliest = min(expiries, default=_NEVER)
        return sum(now < at for at in expiries)

    def _isLive(self, key: str) -> bool:
        at = self._expiresAt.get(key)
        return at is not None and self._clock.seconds() < at

    def _lifetime(self, key: str) -> Lifetime:
        at = self._expiresAt[key]
        return Lifetime(self._createdAt[key], None if at == _NEVER else at)

    def _keep(self, key: str, createdAt: float, expiresAt: float | None) -> None:
        """
        Give C{key} this lifetime, in place of any it had.
        """
        self._unschedule(key)
        if expiresAt is None:
            expiresAt = _NEVER
        else:
            self._expirations.add(key, expiresAt)
            if expiresAt < self._earliest:
                self._earliest = expiresAt
        self._createdAt[key] = createdAt
        self._expiresAt[key] = expiresAt

    def _unschedule(self, key: str) -> None:
        at = self._expiresAt.get(key)
        if at is not None and at != _NEVER:
            self._expirations.remove(key, at)

    def _forget(self, key: str) -> None:
        self._unschedule(key)
        self._drop(key)

    def _drop(self, key: str) -> None:
        del self._createdAt[key], self._expiresAt[key], self._fields[key]
        self._index(key, None)

    def _index(self, key: str, owner: str | None) -> None:
        """
        Record C{key}'s owner (C{None}: it has none) in the owner index.
        """
        before = self._ownerOf.get(key)
        if before == owner:
            return
        if before is not None:
            keys = self._owned[before]
            keys.discard(key)
            if not keys:
                del self._owned[before]
            del self._ownerOf[key]
        if owner is not None:
            self._owned.setdefault(owner, set()).add(key)
            self._ownerOf[key] = owner

    def _remove(self, key: str, reason: DestroyReason) -> bool:
        if key not in self._expiresAt:
            return False
        self._forget(key)
        self._listeners.tell(key, reason)
        return True

    def _expire(self, key: str) -> None:
        at = self._expiresAt.get(key)
        if at is not None and self._clock.seconds() >= at:
            self._drop(key)  # its expiration has run: nothing to unschedule
            self._listeners.tell(key, DestroyReason.expired)
