# -*- test-case-name: tests.db.test_conformance,tests.db.test_persistent -*-
"""
What the persistent databases share: listeners, expirations scheduled on
the clock (again at start-up, for the sessions already stored), and the
record format.

A L{Backend} does the storage work, each operation returning a L{Deferred}
(the SQLite backend runs in adbapi's thread, the LMDB backend in its own);
L{PersistentDatabase} turns a backend into an L{IDatabase}.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from .._fields import LoadedParts, storedRecord
from ..ids import redact
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
from ._writer import Writer

_log = Logger()

Expiry = tuple[str, float]
"""
A session's store key and when it expires.
"""


@attrs.frozen
class Saved:
    """
    What a backend's save reports.

    @ivar result: the result for L{IDatabase.save}.
    @ivar before: the session's expiry before the save.
    @ivar after: its expiry after.
    """

    result: Mapping[str, int] | None
    before: float | None = None
    after: float | None = None


class Backend(Protocol):
    """
    The storage work of a persistent database.

    @ivar initialExpirations: the sessions found when it was opened, with
        their expiry times, to schedule.
    """

    initialExpirations: list[Expiry]

    @property
    def writer(self) -> Writer:
        """
        The thread that commits its changes.
        """

    def load(self, key: str, now: float) -> Deferred[StoredSession | None]:
        """
        @return: the session, or C{None} when absent, corrupt or expired
            at C{now}.
        """

    def save(self, key: str, changes: SessionChanges, now: float) -> Deferred[Saved]:
        """
        Apply C{changes}, as L{IDatabase.save} says; a session expired at
        C{now} counts as gone.
        """

    def rename(
        self, oldKey: str, newKey: str, now: float
    ) -> Deferred[tuple[bool, float | None]]:
        """
        Move a session live at C{now} to C{newKey}.

        @return: whether it moved, and its expiry.
        """

    def destroy(self, key: str) -> Deferred[tuple[bool, float | None]]:
        """
        @return: whether the session existed, and its expiry.
        """

    def destroyAll(self) -> Deferred[list[tuple[str, float | None]]]:
        """
        @return: the sessions removed, with their expiry.
        """

    def count(self, now: float) -> Deferred[int]:
        """
        @return: how many sessions are live at C{now}.
        """

    def sessions(self, prefix: str, now: float) -> Deferred[list[SessionInfo]]:
        """
        @return: the sessions live at C{now} whose key starts with
            C{prefix}, corrupt ones left out.
        """

    def sessionsOf(self, owner: str, now: float) -> Deferred[list[SessionInfo]]:
        """
        @return: the sessions of C{owner} live at C{now}, from the owner
            index.
        """

    def purgeExpired(self, now: float) -> Deferred[list[Expiry]]:
        """
        Remove the sessions expired at C{now}.

        @return: the sessions removed, with their expiry.
        """

    def deleteIfExpired(self, key: str, now: float) -> Deferred[bool]:
        """
        @return: whether the session was there, expired at C{now}, and is
            now removed.
        """

    def close(self) -> Deferred[None]:
        """
        Release files and threads.
        """

    def closeNow(self) -> None:
        """
        Release files and threads at once, blocking until the threads have
        stopped, nothing having been submitted.
        """


def encodeFields(fields: Mapping[str, str]) -> str:
    """
    @return: a session's fields as one JSON object.
    """
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def decodeFields(text: str | bytes) -> dict[str, str]:
    """
    @return: a session's fields from L{encodeFields}'s JSON.
    @raise ValueError: when C{text} is not such an object.
    """
    try:
        decoded = json.loads(text)
    except RecursionError:
        raise ValueError("session fields nested too deep") from None
    return checkFields(decoded)


def checkFields(fields: object) -> dict[str, str]:
    """
    @return: C{fields}, once checked to be a session's fields (decoded JSON,
        whose objects' names are strings).
    @raise ValueError: when it is not an object of strings.
    """
    if type(fields) is not dict:
        raise ValueError("session fields are not an object of strings")
    # A plain loop: on every load, and cheaper than all() over a generator.
    for value in fields.values():
        if type(value) is not str:
            raise ValueError("session fields are not an object of strings")
    return fields


def changeSize(changes: SessionChanges) -> int:
    """
    @return: about how many bytes C{changes} writes, to bound a batch.
    """
    return sum(len(name) + len(text) for name, text in changes.updated.items())


def timesOf(created: object, expires: object) -> tuple[float, float | None]:
    """
    @return: when a session was created and expires, from stored numbers.
    @raise ValueError: when they are not finite numbers.
    """
    return finiteTime(created), None if expires is None else finiteTime(expires)


def finiteTime(value: object) -> float:
    """
    @return: a stored time, as a float.
    @raise ValueError: when it is not a finite number (text, a boolean,
        infinite, not a number, or too large for a float).
    """
    if type(value) is not float:
        if type(value) is not int:
            raise ValueError("a session time is not a number")
        try:
            value = float(value)
        except OverflowError:
            raise ValueError("a session time is out of range") from None
    if not math.isfinite(value):
        raise ValueError("a session time is not finite")
    return value


def lifetimeOf(created: object, expires: object) -> Lifetime:
    """
    @return: a L{Lifetime} from stored numbers.
    @raise ValueError: when they are not numbers.
    """
    return Lifetime(*timesOf(created, expires))


def encodeRecord(lifetime: Lifetime, fields: dict[str, str]) -> bytes:
    """
    @return: a session as LMDB stores it: one JSON object.
    """
    record = {"c": lifetime.createdAt, "e": lifetime.expiresAt, "f": fields}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def recordParts(data: bytes) -> LoadedParts:
    """
    @return: when the session L{encodeRecord} stored was created and
        expires, and its fields.
    @raise ValueError: when C{data} is not such a record.
    """
    try:
        record = json.loads(data)
    except RecursionError:
        raise ValueError("a session record nested too deep") from None
    if type(record) is not dict:
        raise ValueError("a session record is not an object")
    fields = checkFields(record.get("f"))
    return (*timesOf(record.get("c"), record.get("e")), fields)


def decodeRecord(data: bytes) -> StoredSession:
    """
    @return: the session L{encodeRecord} stored.
    @raise ValueError: when C{data} is not such a record.
    """
    return storedRecord(recordParts(data))


_EXPIRY = re.compile(rb'\{"c":[-0-9.e+]+,"e":(null|[-0-9.e+]+),"f":')


def expiryOf(data: bytes) -> float | None:
    """
    When a record expires, read from its first bytes, without decoding its
    values.

    @return: the time, or C{None} for a session without a lifetime.
    @raise ValueError: when C{data} is not a record.
    """
    match = _EXPIRY.match(data)
    if match is None:
        return decodeRecord(bytes(data)).lifetime.expiresAt
    expires = match.group(1)
    return None if expires == b"null" else finiteTime(float(expires))


@implementer(IDatabase)
class PersistentDatabase:
    """
    An L{IDatabase} over a L{Backend}.
    """

    def __init__(self, backend: Backend, clock: IReactorTime | None, name: str) -> None:
        """
        @param backend: the storage.
        @param clock: what schedules expirations; the global reactor when
            C{None}.
        @param name: what log lines call the database.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self._backend = backend
        self.clock = clock
        """
        What schedules expirations and tells the time of loads and saves.
        """
        self.writer = backend.writer
        """
        The writer thread, whose C{commits} and C{changes} count the
        transactions and the changes they held.
        """
        self._name = name
        self._listeners = Listeners()
        self._expirations = ExpirationScheduler(clock, self._expire)
        for key, expiresAt in backend.initialExpirations:
            self._expirations.add(key, expiresAt)

    def load(self, key: str) -> Deferred[StoredSession | None]:
        """
        See L{IDatabase.load}.
        """
        return self._backend.load(key, self.clock.seconds())

    def save(
        self, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        """
        See L{IDatabase.save}.
        """

        def saved(outcome: Saved) -> Mapping[str, int] | None:
            if outcome.before != outcome.after:
                self._reschedule(key, outcome.before, outcome.after)
            return outcome.result

        return self._backend.save(key, changes, self.clock.seconds()).addCallback(saved)

    def rename(self, oldKey: str, newKey: str) -> Deferred[bool]:
        """
        See L{IDatabase.rename}.
        """

        def renamed(outcome: tuple[bool, float | None]) -> bool:
            moved, expiresAt = outcome
            if moved:
                self._reschedule(oldKey, expiresAt, None)
                self._reschedule(newKey, None, expiresAt)
                self._listeners.tell(oldKey, DestroyReason.regenerated)
            return moved

        now = self.clock.seconds()
        return self._backend.rename(oldKey, newKey, now).addCallback(renamed)

    def destroy(self, key: str, reason: DestroyReason) -> Deferred[bool]:
        """
        See L{IDatabase.destroy}.
        """

        def destroyed(outcome: tuple[bool, float | None]) -> bool:
            existed, expiresAt = outcome
            if existed:
                self._reschedule(key, expiresAt, None)
                self._listeners.tell(key, reason)
            return existed

        return self._backend.destroy(key).addCallback(destroyed)

    def destroyAll(self, reason: DestroyReason) -> Deferred[int]:
        """
        See L{IDatabase.destroyAll}.
        """
        return self._backend.destroyAll().addCallback(self._forget, reason)

    def count(self) -> Deferred[int]:
        """
        See L{IDatabase.count}.
        """
        return self._backend.count(self.clock.seconds())

    def sessions(self, prefix: str = "") -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessions}.
        """
        return self._backend.sessions(prefix, self.clock.seconds())

    def sessionsOf(self, owner: str) -> Deferred[list[SessionInfo]]:
        """
        See L{IDatabase.sessionsOf}.
        """
        return self._backend.sessionsOf(owner, self.clock.seconds())

    def purgeExpired(self) -> Deferred[int]:
        """
        See L{IDatabase.purgeExpired}.
        """
        now = self.clock.seconds()
        return self._backend.purgeExpired(now).addCallback(
            self._forget, DestroyReason.expired
        )

    def _forget(
        self, removed: Sequence[tuple[str, float | None]], reason: DestroyReason
    ) -> int:
        """
        Unschedule and announce the sessions a backend removed.

        @return: how many there were.
        """
        for key, expiresAt in removed:
            self._reschedule(key, expiresAt, None)
            self._listeners.tell(key, reason)
        return len(removed)

    def listen(self, listener: DestroyListener) -> Callable[[], None]:
        """
        See L{IDatabase.listen}.
        """
        return self._listeners.add(listener)

    def useDeadline(self, timeout: float) -> None:
        """
        Give each change from now on the manager's deadline: one not
        committed by then never takes effect.  L{txsessions.Sessions} calls
        this with its C{Config.databaseTimeout}.

        @param timeout: seconds from each call (0: no deadline).
        """
        self.writer.useDeadline(timeout)

    def close(self) -> Deferred[None]:
        """
        See L{IDatabase.close}: expirations stop, files close.
        """
        self._expirations.close()
        return self._backend.close()

    def closeNow(self) -> None:
        """
        Close a database opened only to check that it can be, before the
        process forks (twistd, daemonizing): its threads would not survive
        the fork, and would keep a process that fails to start from
        exiting.  Blocks until they have stopped; nothing may have been
        asked of the database.
        """
        self._expirations.close()
        self._backend.closeNow()

    def _reschedule(self, key: str, before: float | None, after: float | None) -> None:
        if before is not None:
            self._expirations.remove(key, before)
        if after is not None:
            self._expirations.add(key, after)

    def _expire(self, key: str) -> None:
        def expired(removed: bool) -> None:
            if removed:
                self._listeners.tell(key, DestroyReason.expired)

        def failed(failure: Any) -> None:
            _log.failure(
                "{name}: expiring session {key} failed",
                failure=failure,
                name=self._name,
                key=redact(key),
            )

        self._backend.deleteIfExpired(key, self.clock.seconds()).addCallbacks(
            expired, failed
        )
