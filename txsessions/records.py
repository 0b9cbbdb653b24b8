# -*- test-case-name: tests.db.test_conformance -*-
"""
The immutable records that cross the L{txsessions.interfaces.IDatabase}
boundary: what a database returns when a session loads, and the batch of
changes it applies when one is saved.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs


class DestroyReason(str, enum.Enum):
    """
    Why a session was destroyed; handed to every C{onDestroy} listener.
    """

    destroyed = "destroyed"
    "The application destroyed it: C{Session.destroy} or C{Sessions.destroy}."
    expired = "expired"
    "Its lifetime ran out."
    destroyAll = "destroyAll"
    "C{Sessions.destroyAll} removed every session."
    destroyByID = "destroyByID"
    "C{Sessions.destroyByID} removed it."
    regenerated = "regenerated"
    "Its id was replaced by a new one; the data lives on under the new id."
    admin = "admin"
    """
    An administrator removed it from outside the server, with the
    C{txsessions destroy} or C{txsessions destroy-all} command
    (L{txsessions.admin}).
    """


@attrs.frozen
class Lifetime:
    """
    When a session began and when it ends.

    @ivar createdAt: when the session was first saved, in seconds since the
        epoch (as the manager's clock tells it).
    @ivar expiresAt: when it expires, or C{None} for a session with no
        server-side lifetime.
    """

    createdAt: float
    expiresAt: float | None = None

    def hasExpired(self, now: float) -> bool:
        """
        @param now: the current time.
        @return: whether the session is over at C{now}: a session is dead at
            its expiry time, not a moment after.
        """
        return self.expiresAt is not None and now >= self.expiresAt


@attrs.frozen
class StoredSession:
    """
    A session as a database holds it.

    @ivar lifetime: its L{Lifetime}.
    @ivar values: each key's value as JSON text.
    """

    lifetime: Lifetime
    values: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class SessionInfo:
    """
    What L{IDatabase.sessions<txsessions.interfaces.IDatabase.sessions>}
    tells of one session: enough to list it, without its values.

    @ivar key: its store key (never its id, which no database holds).
    @ivar lifetime: its L{Lifetime}.
    @ivar size: how many bytes its values take: each value's name and JSON
        text, in UTF-8, added up.
    """

    key: str
    lifetime: Lifetime
    size: int

    @classmethod
    def of(cls, key: str, stored: StoredSession) -> SessionInfo:
        """
        @param key: a session's store key.
        @param stored: the session, as its database holds it.
        @return: what to tell of it.
        """
        return cls(key, stored.lifetime, cls.sizeOf(stored.values))

    @staticmethod
    def sizeOf(values: Mapping[str, str]) -> int:
        """
        @param values: a session's values, each as JSON text.
        @return: their C{size}.
        """
        return sum(
            len(name.encode()) + len(text.encode()) for name, text in values.items()
        )


@attrs.frozen
class SessionChanges:
    """
    What one request changed in a session, applied by a database in one
    step: first C{clear}, then C{deleted}, then C{updated}, then
    C{increments}.

    @ivar create: the session is new: create its record (with C{lifetime}).
        Otherwise change it only if it still exists, so a request that loaded
        a session before another destroyed it cannot bring it back.
    @ivar lifetime: the session's new L{Lifetime}, or C{None} to keep it.
    @ivar clear: remove every value first.
    @ivar deleted: the keys to remove.
    @ivar updated: the keys to set, with their values as JSON text.
    @ivar increments: keys to add an integer to, atomically: a key holding
        no JSON integer counts as 0.
    """

    create: bool = False
    lifetime: Lifetime | None = None
    clear: bool = False
    deleted: frozenset[str] = frozenset()
    updated: Mapping[str, str] = attrs.field(factory=dict)
    increments: Mapping[str, int] = attrs.field(factory=dict)
