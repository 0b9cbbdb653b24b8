"""
Destroy events of one Redis database: who hears of what, once.

Destroys publish C{reason@origin key} on the database's events channel
(L{eventsChannel}; C{origin} names the database that published it), and
expiries come from Redis keyspace notifications.  Each process's listeners
hear of each event once: of its own destroys through whichever comes first,
the script's answer or the event's echo, so that a process whose
subscription is not in place yet still hears of them; and of the rest
through its subscription.
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


def eventsChannel(prefix: str, db: int) -> str:
    """
    The channel the destroy events of a database are published on.  Pub/sub
    channels are the server's, shared by all its databases: the channel
    names the database number, as expiry notifications do, so that
    deployments kept apart by it (C{/1}, C{/2}) do not hear each other's
    destroys.  Database 0 keeps the name earlier versions used for every
    database, C{prefix + "events"}, so that processes of both versions on
    it hear each other.

    @param prefix: the database's key prefix.
    @param db: the Redis database number.
    @return: C{prefix + "events"} for database 0, else C{prefix +
        "events@" + db}.
    """
    if db == 0:
        return prefix + "events"
    return f"{prefix}events@{db}"


class Events:
    """
    The listeners of one database, and what they have been told.

    @ivar origin: the name of this database in the events it publishes.
    @ivar channel: the channel destroy events are published on.
    """

    def __init__(self, prefix: str, db: int = 0) -> None:
        """
        @param prefix: the database's key prefix.
        @param db: the Redis database number.
        """
        self.prefix = prefix
        self.channel = eventsChannel(prefix, db)
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
