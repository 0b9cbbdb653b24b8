# -*- test-case-name: tests.db.test_conformance -*-
"""
The immutable records that cross the L{txsessions.interfaces.IDatabase}
boundary: what a database returns when a session loads, and the batch of
changes it applies when one is saved.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Mapping

import attrs

OWNER_FIELD = "\x00o"
"""
The stored field that ties a session to its owner (see
C{Session.setOwner}): a JSON object with the owner (C{"owner"}), the user
agent it was logged in with (C{"agent"}) and when it was last seen
(C{"seen"}).  Databases read it to keep their owner index.
"""


@attrs.frozen
class OwnerMark:
    """
    What L{OWNER_FIELD} holds.

    @ivar owner: the owner, an application's own user id.
    @ivar agent: the user agent of the request that set the owner.
    @ivar seen: when the session was last seen, to within the manager's
        C{Config.lastSeenInterval}.
    """

    owner: str
    agent: str = ""
    seen: float = 0.0

    def encode(self) -> str:
        """
        @return: this mark as the JSON text of L{OWNER_FIELD}.
        """
        return json.dumps(
            {"owner": self.owner, "agent": self.agent, "seen": self.seen},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | None) -> OwnerMark | None:
        """
        @param text: the JSON text of L{OWNER_FIELD}, or C{None}.
        @return: the mark, or C{None} when there is none or it is malformed.
        """
        if text is None:
            return None
        try:
            mark = json.loads(text)
        except ValueError:
            return None
        if not isinstance(mark, dict):
            return None
        owner, agent, seen = mark.get("owner"), mark.get("agent", ""), mark.get("seen")
        if not isinstance(owner, str) or not owner or not isinstance(agent, str):
            return None
        if not isinstance(seen, (int, float)) or isinstance(seen, bool):
            seen = 0.0
        return cls(owner, agent, float(seen))


def ownerOf(fields: Mapping[str, str]) -> str | None:
    """
    @param fields: a stored session's fields.
    @return: the session's owner, or C{None} when it has none.
    """
    mark = OwnerMark.decode(fields.get(OWNER_FIELD))
    return None if mark is None else mark.owner


def touchesOwner(changes: SessionChanges) -> bool:
    """
    @return: whether C{changes} may change the session's owner, so that a
        database must look at its owner index.
    """
    return mayChangeOwner(
        changes.create, changes.clear, changes.updated, changes.deleted
    )


def mayChangeOwner(
    create: bool, clear: bool, updated: Mapping[str, str], deleted: Collection[str]
) -> bool:
    """
    L{touchesOwner}, of the fields of the L{SessionChanges}.
    """
    return create or clear or OWNER_FIELD in updated or OWNER_FIELD in deleted


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
    owner = "owner"
    """
    C{Sessions.destroyOwner} (or C{txsessions destroy --owner}) ended every
    session of its owner.
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


# StoredSession and SessionChanges are built once per load and save on the
# request path; attrs's frozen classes set each field through
# object.__setattr__, which made one cost two and a half times as much.
# They are not to be changed all the same, and are unhashable either way
# (their mappings).


@attrs.define
class StoredSession:
    """
    A session as a database holds it: a record not to be changed.

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
    @ivar owner: its owner (C{Session.setOwner}), or C{None}.
    @ivar lastSeen: when it was last seen, to within the manager's
        C{Config.lastSeenInterval}; C{None} for a session without an owner.
    @ivar userAgent: the user agent of the request that set its owner, or
        C{None}.
    @ivar current: whether it is the session of the request a listing was
        made for (C{Sessions.sessionsOf(owner, current=request)}).
    """

    key: str
    lifetime: Lifetime
    size: int
    owner: str | None = None
    lastSeen: float | None = None
    userAgent: str | None = None
    current: bool = False

    @classmethod
    def of(cls, key: str, stored: StoredSession) -> SessionInfo:
        """
        @param key: a session's store key.
        @param stored: the session, as its database holds it.
        @return: what to tell of it.
        """
        return cls.ofFields(key, stored.lifetime, stored.values)

    @classmethod
    def ofFields(
        cls, key: str, lifetime: Lifetime, fields: Mapping[str, str]
    ) -> SessionInfo:
        """
        @param key: a session's store key.
        @param lifetime: its lifetime.
        @param fields: its stored fields.
        @return: what to tell of it.
        """
        size = cls.sizeOf(fields)
        mark = OwnerMark.decode(fields.get(OWNER_FIELD))
        if mark is None:
            return cls(key, lifetime, size)
        return cls(key, lifetime, size, mark.owner, mark.seen, mark.agent)

    @staticmethod
    def sizeOf(values: Mapping[str, str]) -> int:
        """
        @param values: a session's values, each as JSON text.
        @return: their C{size}.
        """
        return sum(
            len(name.encode()) + len(text.encode()) for name, text in values.items()
        )


@attrs.define
class SessionChanges:
    """
    What one request changed in a session, applied by a database in one
    step: first C{clear}, then C{deleted}, then C{updated}, then
    C{increments}.  A record not to be changed.

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
