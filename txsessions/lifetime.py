# -*- test-case-name: tests.test_lifetime -*-
"""
Scheduling session expirations on an L{IReactorTime}.

One L{IDelayedCall} per session would cost a heap entry each and, when many
expire together, one long reactor turn.  L{ExpirationScheduler} instead puts
every session that ends within the same second in one bucket with one
L{IDelayedCall}, and expires a full bucket in slices, giving the reactor back
between them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

_log = Logger()

SLICE = 2000
"""
How many sessions one reactor turn expires at the most.
"""


class ExpirationScheduler:
    """
    Call C{expire(key)} once the time given for C{key} has come, no more than
    a second late.

    @ivar granularity: how late, in seconds, an expiration may run at most.
    """

    granularity = 1.0

    def __init__(self, clock: IReactorTime, expire: Callable[[str], object]) -> None:
        """
        @param clock: what schedules the calls.
        @param expire: called with each key whose time has come.
        """
        self._clock = clock
        self._expire = expire
        # Each bucket is a dict of keys to None rather than a set: up to
        # CPython 3.13 a dict of strings is not tracked by the garbage
        # collector, so a million scheduled keys add nothing to a full
        # collection (a set of them added 80 ms).
        self._buckets: dict[int, dict[str, None]] = {}
        self._calls: dict[int, IDelayedCall] = {}
        self._slices: set[IDelayedCall] = set()
        self._closed = False

    def add(self, key: str, at: float) -> None:
        """
        Schedule C{key} to expire at C{at}.

        @param key: a store key.
        @param at: the time it expires.
        """
        if self._closed:
            return
        try:
            second = math.ceil(at)
            bucket = self._buckets.get(second)
            if bucket is None:
                delay = max(second - self._clock.seconds(), 0)
                bucket = self._buckets[second] = {}
                self._calls[second] = self._clock.callLater(delay, self._fire, second)
        except (TypeError, ValueError, OverflowError):
            return  # no finite number: a corrupt time read from a database
        bucket[key] = None

    def remove(self, key: str, at: float) -> None:
        """
        Forget the expiration of C{key} scheduled with L{add}.

        @param key: a store key.
        @param at: the time given to L{add}.
        """
        try:
            second = math.ceil(at)
        except (TypeError, ValueError, OverflowError):
            return  # never scheduled (see add)
        bucket = self._buckets.get(second)
        if bucket is None:
            return
        bucket.pop(key, None)
        if not bucket:
            del self._buckets[second]
            self._calls.pop(second).cancel()

    def close(self) -> None:
        """
        Cancel every pending call; nothing expires after this.
        """
        self._closed = True
        for call in [*self._calls.values(), *self._slices]:
            call.cancel()
        self._calls.clear()
        self._slices.clear()
        self._buckets.clear()

    def _fire(self, second: int) -> None:
        del self._calls[second]
        self._drain(self._buckets.pop(second))

    def _drain(self, keys: dict[str, None]) -> None:
        self._slices = {call for call in self._slices if call.active()}
        for _ in range(min(SLICE, len(keys))):
            key = keys.popitem()[0]
            try:
                self._expire(key)
            except Exception:
                _log.failure("expiring a session failed")
        if keys:
            self._slices.add(self._clock.callLater(0, self._drain, keys))
