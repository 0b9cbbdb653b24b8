# -*- test-case-name: tests.test_events -*-
"""
A list of destroy listeners, each told in turn, one failing listener never
stopping the others.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from .ids import redact
from .interfaces import DestroyListener
from .records import DestroyReason

_log = Logger()


class Listeners:
    """
    Destroy listeners, told in the order they were added.
    """

    def __init__(self) -> None:
        self._listeners: list[DestroyListener] = []

    def add(self, listener: DestroyListener) -> Callable[[], None]:
        """
        Add a listener.

        @param listener: called with a store key and a L{DestroyReason}.
        @return: a function that removes it again.
        """
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def tell(self, key: str, reason: DestroyReason) -> None:
        """
        Tell every listener that a session was destroyed.  A listener that
        raises is logged and the others are still told; a listener may add
        or remove listeners, or call back into the manager.

        @param key: the session's store key.
        @param reason: why it was destroyed.
        """
        for listener in list(self._listeners):
            try:
                listener(key, reason)
            except Exception:
                _log.failure(
                    "a destroy listener failed for session {key} ({reason})",
                    key=redact(key),
                    reason=reason.value,
                )
