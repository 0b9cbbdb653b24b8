# -*- test-case-name: tests.db.test_conformance -*-
"""
The storage interface, for database authors: L{IDatabase}, the records that
cross it (L{StoredSession}, L{SessionChanges}, L{SessionInfo},
L{Lifetime}, L{DestroyReason}) and L{DestroyListener}; and
L{ISessionValues}, what Klein sessions authorize.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Interface

from .records import (
    DestroyReason,
    Lifetime,
    SessionChanges,
    SessionInfo,
    StoredSession,
)

__all__ = [
    "DestroyListener",
    "DestroyReason",
    "IDatabase",
    "ISessionValues",
    "Lifetime",
    "SessionChanges",
    "SessionInfo",
    "StoredSession",
]

DestroyListener = Callable[[str, DestroyReason], object]
"""
Called with a session's store key and the reason it was destroyed.
"""


class IDatabase(Interface):
    """
    Where sessions live.  Every method that may do I/O returns a L{Deferred},
    and each is one round trip for a networked store: a request costs one
    L{load} and at most one L{save} or L{destroy}.

    Keys are store keys (L{txsessions.ids.storeKey}), never session ids.  A
    database removes a session when its lifetime ends and tells its
    listeners, with L{DestroyReason.expired}; it never returns an expired
    session from L{load}.  Calls for one key take effect in the order they
    were made: a request may C{rename} a session and C{save} it under its
    new key without waiting between the two.
    """

    def load(key: str) -> Deferred[StoredSession | None]:
        """
        Load a session.

        @param key: the session's store key.
        @return: a L{Deferred} firing with the session, or with C{None} when
            there is no such live session.
        """

    def save(key: str, changes: SessionChanges) -> Deferred[Mapping[str, int] | None]:
        """
        Apply one request's changes to a session, atomically.

        @param key: the session's store key.
        @param changes: what to change.
        @return: a L{Deferred} firing with the new value of each key in
            C{changes.increments} (an empty mapping when there are none), or
            with C{None} when C{changes.create} is false and the session no
            longer exists (nothing is written then).  It fails with a
            L{CounterRangeError <txsessions.errors.CounterRangeError>} (a
            L{DatabaseError <txsessions.errors.DatabaseError>}), and nothing
            is written, when a counter would leave the 64-bit integers (a
            stored counter or a delta beyond them, or a sum past them).
        """

    def rename(oldKey: str, newKey: str) -> Deferred[bool]:
        """
        Move a live session, with its lifetime and values, to a new key, in
        one step, and tell the listeners of C{oldKey} with
        L{DestroyReason.regenerated}.

        @param oldKey: its store key now.
        @param newKey: its store key from now on; no session may be stored
            under it yet (the caller draws it fresh).
        @return: a L{Deferred} firing with C{False}, moving nothing, when
            there is no live session under C{oldKey}.
        """

    def destroy(key: str, reason: DestroyReason) -> Deferred[bool]:
        """
        Remove a session and tell the listeners, with C{reason}, if it
        existed.

        @param key: the session's store key.
        @param reason: why.
        @return: a L{Deferred} firing with whether the session existed.
        """

    def destroyAll(reason: DestroyReason) -> Deferred[int]:
        """
        Remove every session, telling the listeners of each.

        @param reason: why.
        @return: a L{Deferred} firing with how many sessions were removed.
        """

    def count() -> Deferred[int]:
        """
        @return: a L{Deferred} firing with the number of live sessions.
        """

    def sessions(prefix: str = "") -> Deferred[list[SessionInfo]]:
        """
        Describe the live sessions, for the admin command
        (L{txsessions.admin}): their keys, lifetimes and sizes, not their
        values.  Walks the whole store (or the keys under C{prefix}), so it
        is no part of serving a request.

        @param prefix: only the sessions whose store key starts with it.
        @return: a L{Deferred} firing with a L{SessionInfo} for each live
            session, in no particular order.
        """

    def sessionsOf(owner: str) -> Deferred[list[SessionInfo]]:
        """
        Describe the live sessions of one owner (those whose
        L{txsessions.records.OWNER_FIELD} names it), from an owner index
        kept with the sessions: no walk of the store, and on a networked
        store one round trip.

        @param owner: the owner.
        @return: a L{Deferred} firing with a L{SessionInfo} for each of its
            live sessions, in no particular order.
        """

    def purgeExpired() -> Deferred[int]:
        """
        Remove every session whose lifetime has ended, telling the listeners
        of each with L{DestroyReason.expired}: what the database does on its
        own while it is open, done for sessions that expired while no server
        had it open.

        @return: a L{Deferred} firing with how many sessions were removed.
        """

    def listen(listener: DestroyListener) -> Callable[[], None]:
        """
        Be told of every session this database destroys.

        @param listener: called with the store key and the reason.
        @return: a function that stops telling C{listener}.
        """

    def close() -> Deferred[None]:
        """
        Release the database's timers and connections.

        @return: a L{Deferred} firing when it is closed.
        """


class ISessionValues(Interface):
    """
    The values of a Klein session kept by L{KleinSessionStore}: read from the
    copy loaded with the session, written through to the database.
    """

    def get(key: str, default: Any = None) -> Any:
        """
        @return: the value under C{key}, or C{default}.
        """

    def getAll() -> dict[str, Any]:
        """
        @return: every key and value.
        """

    def set(key: str, value: Any) -> Deferred[None]:
        """
        Store a JSON value.

        @return: a L{Deferred} firing once it is saved.
        """

    def delete(key: str) -> Deferred[bool]:
        """
        Remove a key.

        @return: a L{Deferred} firing with whether the session held it.
        """

    def increment(key: str, n: int = 1) -> Deferred[int]:
        """
        Add C{n} to the integer under C{key}, atomically.

        @return: a L{Deferred} firing with the new value.
        """
