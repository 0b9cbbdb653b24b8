# -*- test-case-name: tests.test_events -*-
"""
A list of destroy listeners, each told in turn, one failing listener never
stopping the others.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import isawaitable

from twisted.logger import Logger
from twisted.python.failure import Failure

from ._calls import fromAwaitable
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

        @param listener: called with a store key and a L{DestroyReason};
            what it returns, if it is awaitable (an C{async def}
            listener's coroutine, a
            L{Deferred<twisted.internet.defer.Deferred>}), is run, and its
            failure logged.
        @return: a function that removes it again.
        @raise TypeError: when C{listener} cannot be called.
        """
        if not callable(listener):
            raise TypeError(
                f"a destroy listener is a callable, not {type(listener).__name__}"
            )
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
                result = listener(key, reason)
                if result is not None and isawaitable(result):
                    fromAwaitable(result).addErrback(_failed, key, reason)
            except Exception:
                _failed(Failure(), key, reason)


def _failed(failure: Failure, key: str, reason: DestroyReason) -> None:
    _log.failure(
        "a destroy listener failed for session {key} ({reason})",
        failure,
        key=redact(key),
        reason=reason.value,
    )
