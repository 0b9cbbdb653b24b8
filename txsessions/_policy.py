# -*- test-case-name: tests.test_expiration -*-
"""
Lifetime arithmetic: pure functions of a L{Config} and the time, each
returning a L{Lifetime} (or telling whether one has ended).  Nothing here
reads a clock or touches a session.
"""

from __future__ import annotations

from .config import Config
from .records import Lifetime


class LifetimePolicy:
    """
    The lifetime rules of one configuration: C{expires} or C{idleTimeout}
    for a new session, C{idleTimeout} pushed back on use, and
    C{absoluteTimeout} capping them all.
    """

    __slots__ = ("_absolute", "_idle", "_initial", "fixed")

    def __init__(self, config: Config) -> None:
        """
        @param config: the configuration whose timeouts apply.
        """
        self._absolute = config.absoluteTimeout
        self._idle = config.idleTimeout
        self._initial = config.expires or config.idleTimeout
        self.fixed = not (self._absolute or self._idle)
        """
        Whether a session's lifetime is only its own: no idle timeout to push
        back, no absolute timeout to cap it (L{hasEnded} is then
        L{Lifetime.hasExpired}, and L{touched} always C{None}).
        """

    def new(self, now: float) -> Lifetime:
        """
        @param now: the current time.
        @return: the lifetime of a session created at C{now}.
        """
        return Lifetime(*self.newTimes(now))

    def newTimes(self, now: float) -> tuple[float, float | None]:
        """
        L{new}, as the fields of its L{Lifetime}, without building one (a
        new session makes its L{Lifetime} only if it is asked for it).

        @param now: the current time.
        @return: when a session created at C{now} is created and expires.
        """
        initial = self._initial
        expiresAt = now + initial if initial else None
        return now, self.cap(now, expiresAt) if self._absolute else expiresAt

    def renewed(self, lifetime: Lifetime, now: float, seconds: float) -> Lifetime:
        """
        @param lifetime: a session's lifetime.
        @param now: the current time.
        @param seconds: the new lifetime from now; 0 for none, or for the
            idle timeout when there is one (which no session goes without).
        @return: C{lifetime} ending C{seconds} from C{now} (capped).
        """
        seconds = seconds or self._idle
        createdAt = lifetime.createdAt
        return Lifetime(
            createdAt, self.cap(createdAt, now + seconds if seconds else None)
        )

    def touched(self, lifetime: Lifetime, now: float) -> Lifetime | None:
        """
        Push back the end of an idle-timed session, at most once per
        twentieth of the timeout.

        @param lifetime: the session's lifetime.
        @param now: the current time.
        @return: the pushed-back lifetime, or C{None} when it stays.
        """
        idle = self._idle
        if not idle or lifetime.expiresAt is None:
            return None
        desired = self.cap(lifetime.createdAt, now + idle)
        if desired is not None and desired - lifetime.expiresAt >= max(1.0, idle / 20):
            return Lifetime(lifetime.createdAt, desired)
        return None

    def hasEnded(self, lifetime: Lifetime, now: float) -> bool:
        """
        @param lifetime: a session's lifetime.
        @param now: the current time.
        @return: whether it is over at C{now}, by its own end or by the
            absolute timeout.
        """
        absolute = self._absolute
        return lifetime.hasExpired(now) or bool(
            absolute and lifetime.createdAt + absolute <= now
        )

    def cap(self, createdAt: float, expiresAt: float | None) -> float | None:
        """
        @param createdAt: when a session was created.
        @param expiresAt: when it would end, or C{None} for never.
        @return: C{expiresAt}, no later than the absolute timeout allows.
        """
        absolute = self._absolute
        if not absolute:
            return expiresAt
        cap = createdAt + absolute
        return cap if expiresAt is None else min(expiresAt, cap)
