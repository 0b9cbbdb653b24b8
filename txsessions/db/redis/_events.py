"""
Destroy events of one Redis database: who hears of what, once.

Destroys publish C{reason@origin key} on the C{prefix + "events"} channel
(C{origin} names the database that published it), and expiries come from
Redis keyspace notifications.  Each process's listeners hear of each event
once: of its own destroys through whichever comes first, the script's
answer or the event's echo, so that a process whose subscription is not in
place yet still hears of them; and of the rest through its subscription.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ...interfaces import DestroyListener
from ...listeners import Listeners
from ...records import DestroyReason

_log = Logger()

TOLD_ONCE_KEPT = 10_000
"""
How many of its own events a database remembers having told its listeners
of, awaiting their second way in (see L{Events.tellOwn}).
"""


class Events:
    """
    The listeners of one database, and what they have been told.

    @ivar origin: the name of this database in the events it publishes.
    @ivar channel: the channel destroy events are published on.
    """

    def __init__(self, prefix: str) -> None:
        """
        @param prefix: the database's key prefix.
        """
        self.prefix = prefix
        self.channel = prefix + "events"
        self.origin = secrets.token_hex(8)
        self._listeners = Listeners()
        self._toldOnce: dict[tuple[str, str], None] = {}
        self._marks: dict[str, Deferred[None]] = {}
        self._markCount = 0

    def listen(self, listener: DestroyListener) -> Callable[[], None]:
        """
        Add a listener.

        @return: a function removing it.
        """
        return self._listeners.add(listener)

    def mark(self) -> tuple[str, Deferred[None]]:
        """
        A marker to publish, and a L{Deferred} firing when it comes back.
        """
        self._markCount += 1
        mark = f"mark@{self.origin} {self._markCount}"
        waiter: Deferred[None] = Deferred()
        self._marks[mark] = waiter
        return mark, waiter

    def cancelMarks(self) -> None:
        """
        Give up waiting for every marker (the database is closing).
        """
        marks, self._marks = self._marks, {}
        for waiter in marks.values():
            waiter.cancel()

    def expired(self, redisKey: str) -> None:
        """
        Redis expired a key: tell the listeners, if it is a session's.
        """
        if redisKey.startswith(self.prefix):
            self._listeners.tell(redisKey[len(self.prefix) :], DestroyReason.expired)

    def published(self, message: str) -> None:
        """
        A message arrived on the events channel.
        """
        waiter = self._marks.pop(message, None)
        if waiter is not None:
            waiter.callback(None)
            return
        head, _, key = message.partition(" ")
        # Earlier versions published "reason key", with no origin.
        reason, _, origin = head.partition("@")
        if reason == "mark":
            return
        try:
            destroyReason = DestroyReason(reason)
        except ValueError:
            _log.warn("unknown session event on {channel}", channel=self.channel)
            return
        if origin == self.origin:
            self.tellOwn(destroyReason, key)
        else:
            self._listeners.tell(key, destroyReason)

    def tellOwn(self, reason: DestroyReason, key: str) -> None:
        """
        Tell the listeners of an event this database published, when the
        first of its two ways here arrives: the script's answer, or the echo
        through the subscription.  Either may never come (a connection lost
        after the script ran, a subscription not in place yet).
        """
        event = (reason.value, key)
        if event in self._toldOnce:
            del self._toldOnce[event]
            return
        if len(self._toldOnce) >= TOLD_ONCE_KEPT:
            # Echoes that never came (the subscription was down): forget the
            # oldest.
            del self._toldOnce[next(iter(self._toldOnce))]
        self._toldOnce[event] = None
        self._listeners.tell(key, reason)
