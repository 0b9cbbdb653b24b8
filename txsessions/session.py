# -*- test-case-name: tests.test_session,tests.test_flashes -*-
r"""
L{Session}: one client's values, loaded when the request starts, changed in
memory, and saved in one batch before the response completes.

Its typed getters, mapping protocol and flash messages are mixins
(C{_getters}, C{_mapping}, C{_flashes}); how its fields are stored is
C{_fields}'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Protocol, TypeVar, cast

from twisted.internet.defer import Deferred

from ._changes import NONE, ChangeSet, added, removed
from ._fields import FLASH, IMMUTABLE, ChangeParts, changesRecord
from ._fields import splitFields as splitFields
from ._flashes import FlashMethods
from ._getters import TypedGetters
from ._mapping import MappingMethods
from .csrf import csrfToken
from .errors import ImmutableValueError
from .records import OWNER_FIELD, Lifetime, OwnerMark, SessionChanges
from .values import checkIncrement, encodeValue, isOwnerName

T = TypeVar("T")

_missing: Any = object()


# The request session's operations on a session: C{txsessions._request} and
# this module are one unit, and these functions are where the one reaches
# into the other.


def setLifetime(session: Session, lifetime: Lifetime, create: bool = True) -> None:
    """
    Give C{session} a new lifetime, to be saved and sent in its cookie.

    @param create: whether a new session nobody wrote to is to be created
        for it; if not, it only gets the lifetime it will be created with.
    @raise SessionDestroyedError: when the session was destroyed.
    """
    session.changes.checkAlive()
    session.lifetime = lifetime
    changes = session.changes
    if changes.stored or create:
        changes.lifetimeChanged = True
        changes.cookieDirty = True


def markDestroyed(session: Session) -> None:
    """Mark C{session} destroyed: it forgets its values and its changes."""
    session._markDestroyed()


def rekey(session: Session, sessionID: str, key: str) -> None:
    """Give C{session} a new id and store key."""
    session._id, session._key = sessionID, key


def storedKey(session: Session) -> str | None:
    """@return: C{session}'s store key in its database; C{None} when unstored."""
    return session.key if session.changes.stored else None


def addIncremented(session: Session, values: Mapping[str, int]) -> None:
    """Take the values the database returned for an increment."""
    session._values.update(values)


def restart(session: Session, lifetime: Lifetime) -> None:
    """
    Make C{session} a new session (under the id it has now) holding only
    what the request wrote to it since it was last saved (not what the
    session noted itself on loading, such as its owner's last-seen time):
    what a request carries on with when another request regenerated or
    destroyed its session first.

    @param session: the session.
    @param lifetime: the new session's lifetime.
    """
    session._restart(lifetime)


def noteSeen(session: Session, now: float, interval: float) -> bool:
    """
    Record that C{session} was seen at C{now}, when it has an owner whose
    last-seen time is C{interval} seconds old or more: so that a request
    costs a write at most once per interval for it.

    @return: whether the session has an owner.
    """
    mark = session._mark
    if mark is None:
        return False
    if now - mark.seen >= interval:
        session._setMark(OwnerMark(mark.owner, mark.agent, now))
    return True


class SessionOwner(Protocol):
    """
    What a L{Session} asks of the request it belongs to (in txsessions, the
    request session of C{txsessions._request}).
    """

    def newID(self) -> tuple[str, str]:
        """
        @return: a new session id and its store key.
        """

    def now(self) -> float:
        """
        @return: the current time.
        """

    def increment(self, session: Session, key: str, n: int) -> Deferred[int]:
        """
        Save C{session}'s changes now, with C{key} incremented by C{n}.
        """

    def regenerate(self, session: Session) -> Deferred[None]:
        """
        Give C{session} a new id.
        """

    def destroy(self, session: Session) -> Deferred[None]:
        """
        Destroy C{session}.
        """

    def userAgent(self) -> str:
        """
        @return: the request's user agent, or C{""}.
        """


class Session(TypedGetters, MappingMethods, FlashMethods):
    """
    A client's session, as one request sees it (Iris: C{sessions.Session}).

    Reads are synchronous, on the values loaded when the request started.
    Writes change those values at once and are saved together before the
    response completes (after, they raise L{txsessions.errors.SessionError});
    a session nobody changed is not written, and a new session nobody wrote
    to is neither stored nor given a cookie.

    Values are JSON: C{str}, C{int}, C{float}, C{bool}, C{None}, and lists
    and dicts of them.  A list or dict set in a request is saved as it is
    when the request saves (C{session.setdefault("cart", []).append(x)}
    is saved, as in Django and Flask); one loaded and changed in place is
    not: L{set} it again.

    @ivar isNew: whether this request created the session: the client sent
        no cookie, or one naming no live session.
    @ivar changes: its L{ChangeSet}, for the request session that saves it.
    """

    __slots__ = (
        "_owner",
        "_id",
        "_key",
        "_lifetime",
        "_times",
        "isNew",
        "changes",
        "_mark",
        "_values",
        "_immutables",
        "_flashes",
    )

    def __init__(
        self,
        owner: SessionOwner,
        sessionID: str | None,
        key: str | None,
        lifetime: Lifetime | tuple[float, float | None],
        fields: Mapping[str, str] | None = None,
    ) -> None:
        """
        @param owner: the request this session belongs to.
        @param sessionID: its id, or C{None} for a new session (one is drawn
            when it is first needed).
        @param key: its store key, or C{None} with C{sessionID}.
        @param lifetime: its lifetime, or when it was created and expires
            (made a L{Lifetime} when first read).
        @param fields: its stored fields, or C{None} for a new session.
        @raise ValueError: when a stored field is not JSON.
        """
        self._owner = owner
        self._id = sessionID
        self._key = key
        if type(lifetime) is tuple:
            self._lifetime: Lifetime | None = None
            self._times = lifetime
        else:
            self.lifetime = cast(Lifetime, lifetime)
        self.isNew = fields is None
        self.changes = ChangeSet(fields is not None)
        self._mark: OwnerMark | None = None
        if fields:
            self._values, self._immutables, self._flashes = splitFields(fields)
            text = fields.get(OWNER_FIELD)
            if text is not None:
                self._mark = OwnerMark.decode(text)
        else:
            self._values, self._immutables, self._flashes = {}, NONE, {}

    def __repr__(self) -> str:
        state = "destroyed" if self.destroyed else "new" if self.isNew else "loaded"
        return f"<Session {state}, {len(self._values)} values>"

    @property
    def id(self) -> str:
        """
        The session id: the secret the cookie carries.  Never log it.
        """
        if self._id is None:
            self._id, self._key = self._owner.newID()
        return self._id

    @property
    def key(self) -> str:
        """
        The session's store key, derived from its id: what databases and
        destroy listeners know the session by.
        """
        if self._key is None:
            self._id, self._key = self._owner.newID()
        return self._key

    @property
    def lifetime(self) -> Lifetime:
        """
        When the session was created and when it expires.
        """
        lifetime = self._lifetime
        if lifetime is None:
            lifetime = self._lifetime = Lifetime(*self._times)
        return lifetime

    @lifetime.setter
    def lifetime(self, lifetime: Lifetime) -> None:
        self._lifetime = lifetime
        self._times = (lifetime.createdAt, lifetime.expiresAt)

    @property
    def expiresAt(self) -> float | None:
        """
        When the session expires, or C{None} when it has no server-side
        lifetime.
        """
        return self._times[1]

    def remaining(self) -> float | None:
        """
        @return: the seconds left before the session expires (0 once it has),
            or C{None} when it has no server-side lifetime.
        """
        expiresAt = self._times[1]
        if expiresAt is None:
            return None
        return max(expiresAt - self._owner.now(), 0.0)

    @property
    def owner(self) -> str | None:
        """
        The user the session belongs to (L{setOwner}), or C{None}.  Read
        only: L{setOwner} sets it, so that the owner is saved and the
        owner's list of sessions knows of it.
        """
        mark = self._mark
        return None if mark is None else mark.owner

    @property
    def destroyed(self) -> bool:
        """
        Whether L{destroy} was called.
        """
        return self.changes.destroyed and not self.changes.finished

    def csrfToken(self) -> str:
        """A token for this session's forms (L{txsessions.csrf.csrfToken})."""
        return csrfToken(self)

    # Reading

    def get(self, key: str, default: Any = None) -> Any:
        """
        @param key: a session key.
        @param default: returned when the session has no such key.
        @return: the value stored under C{key} (a copy, for an immutable
            value), or C{default}.
        """
        value = self._values.get(key, _missing)
        if value is _missing:
            return default
        return copy.deepcopy(value) if key in self._immutables else value

    def getAll(self) -> dict[str, Any]:
        """
        @return: a new C{dict} of every key and value.
        """
        return {key: self.get(key) for key in self._values}

    def visit(self, callback: Callable[[str, Any], object]) -> None:
        """
        Call C{callback(key, value)} for each value, in the order they were
        first set; on Redis, a loaded session's in its hash's order: the
        same while the hash is small (128 keys, values of 64 bytes, by
        Redis's defaults), any order past that.
        """
        for key in list(self._values):
            callback(key, self.get(key))

    def len(self) -> int:
        """
        @return: how many values the session holds (also C{len(session)}).
        """
        return len(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    # Writing

    def set(self, key: str, value: Any) -> None:
        """
        Store a value, replacing any under the same key.

        @param key: a C{str}.
        @param value: a JSON value.
        @raise ValueNotSerializable: when C{key} or C{value} is not storable.
        @raise ImmutableValueError: when the key holds an immutable value.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        changes = self.changes
        if changes.destroyed:
            self._checkAlive()
        if key in self._immutables:
            raise ImmutableValueError(
                f"session key {key!r} holds an immutable value: use setImmutable "
                "to replace it, or delete it first"
            )
        text = encodeValue(key, value)
        # ChangeSet.change, inline: this runs on every write.
        changes.updated[key] = text
        if key in changes.deleted:
            changes.deleted = changes.deleted - {key}
        self._values[key] = value
        if type(value) is list or type(value) is dict:  # see encodeAgain
            changes.containers = added(changes.containers, key)

    def setImmutable(self, key: str, value: Any) -> None:
        """
        Store a value that L{set} cannot replace and that readers get a copy
        of; L{setImmutable} replaces it, L{delete} and L{clear} remove it.

        @raise ValueNotSerializable: when C{key} or C{value} is not storable.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        self._put(key, encodeValue(key, value), copy.deepcopy(value))
        if key not in self._immutables:
            self._immutables = added(self._immutables, key)
            self._change(IMMUTABLE + key, "true")

    def delete(self, key: str) -> bool:
        """
        Remove a key.

        @return: whether the session held it.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        if self._values.pop(key, _missing) is _missing:
            return False
        self._change(key, None)
        if key in self._immutables:
            self._immutables = removed(self._immutables, key)
            self._change(IMMUTABLE + key, None)
        return True

    def clear(self) -> None:
        """
        Remove every value; the session, its id and its flash messages
        remain.

        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        self._values.clear()
        self._immutables = NONE
        changes = self.changes
        # The flash messages and the owner (see setOwner) stay.
        kept = {k: v for k, v in changes.updated.items() if k.startswith(FLASH)}
        if OWNER_FIELD in changes.updated:
            kept[OWNER_FIELD] = changes.updated[OWNER_FIELD]
        changes.updated = kept
        changes.deleted = {k for k in changes.deleted if k.startswith(FLASH)}
        changes.cleared = changes.stored

    def increment(self, key: str, n: int = 1) -> Deferred[int]:
        """
        Add C{n} to the integer under C{key}, atomically in the database: two
        requests incrementing one key at once never lose an update.  A key
        holding no integer counts as 0.  Other changes made so far are saved
        in the same round trip.  It may be called once the response has
        finished (a download counted when it completes), as a save of its
        own.

        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing with the new
            value; it fails with L{txsessions.errors.CounterRangeError}
            when that would leave the 64-bit integers, in every database.
        @raise ImmutableValueError: when the key holds an immutable value.
        @raise SessionDestroyedError: when the session was destroyed.
        @raise TypeError: when C{n} is not an C{int}.
        @raise ValueError: when it is not a 64-bit integer.
        """
        if self.destroyed:  # not once finished: an increment is a save of its own
            self._checkAlive()
        checkIncrement(key, n)
        if key in self._immutables:
            raise ImmutableValueError(f"session key {key!r} holds an immutable value")
        return self._owner.increment(self, key, n)

    def decrement(self, key: str, n: int = 1) -> Deferred[int]:
        """
        Subtract C{n} from the integer under C{key}; see L{increment}.

        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing with the new
            value.
        """
        return self.increment(key, -n)

    def regenerate(self) -> Deferred[None]:
        """
        Give the session a new id, keeping its data, and send the client the
        new cookie; the old id is dead as soon as the returned
        L{Deferred<twisted.internet.defer.Deferred>}
        fires.  Call it whenever privileges change, above all at login, so
        that an id planted before cannot follow the user in (session
        fixation).  Destroy listeners hear of the old key with
        L{DestroyReason.regenerated}.

        When another request regenerated or destroyed the session first (a
        double-clicked login button), this one carries on with a new
        session under its new id, holding only what this request wrote to
        it, and answers normally.  A save to a session another request
        regenerated or destroyed since this one loaded it is never written
        back: the response is a 409 (L{txsessions.errors.SessionConflictError}).

        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing once the database
            holds the session
            under its new key; the response waits for it in any case.
        @raise SessionDestroyedError: when the session was destroyed.
        @raise SessionError: once the response headers are sent.
        """
        return self._owner.regenerate(self)

    def destroy(self) -> Deferred[None]:
        """
        Remove the session from the database, tell the destroy listeners and
        make the client forget its cookie.  Later changes raise
        L{SessionDestroyedError}.

        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing once the database
            has removed it; the
            response waits for it in any case.
        """
        return self._owner.destroy(self)

    # Its user (issue 19: "log out everywhere", a device list)

    def setOwner(self, owner: str) -> None:
        """
        Tie the session to a user: C{Sessions.sessionsOf} lists it among
        the user's sessions, and C{Sessions.destroyOwner} ends it with the
        others.  Call it at login, after L{regenerate}.  The owner is saved
        with the session, survives L{regenerate} and L{clear}, and goes with
        the session when it is destroyed or expires; the request's user
        agent is kept with it, for the user's list of sessions.

        @param owner: the application's own id of the user: 1 to 256
            bytes in UTF-8 (no lone surrogate), no NUL.
        @raise ValueError: for an owner that is not such a string.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        if not isOwnerName(owner):
            raise ValueError("an owner is a string of 1 to 256 bytes in UTF-8, no NUL")
        self._checkAlive()
        mark = self._mark
        if mark is not None and mark.owner == owner:
            return
        self._setMark(OwnerMark(owner, self._owner.userAgent(), self._owner.now()))

    # Used by the request session (see the functions below)

    def _changeParts(self, increments: Mapping[str, int] | None = None) -> ChangeParts:
        """
        Hand over what changed since the last call, as the fields of a
        L{SessionChanges} in order (C{deleted} a plain set), and forget it;
        the session counts as stored from then on.
        """
        changes = self.changes
        if changes.readFlashes:
            self._removeReadFlashes()
        if changes.containers:
            changes.encodeAgain(self._values)
        create = not changes.stored
        updated = changes.updated
        if changes.cleared and not create:
            self._keepFlashes()
        mark = self._mark
        if mark is not None and changes.cleared and not create:
            updated[OWNER_FIELD] = mark.encode()  # clear() keeps the owner
        times = self._times if create or changes.lifetimeChanged else None
        taken = (
            create,
            times,
            changes.cleared and not create,
            NONE if create else changes.deleted,
            updated,
            increments or {},
        )
        changes.stored = True
        changes.updated = {}
        changes.deleted = NONE
        changes.cleared = False
        changes.lifetimeChanged = False
        return taken

    def _restart(self, lifetime: Lifetime) -> None:
        old = self.changes
        written = old.written()  # not the owner's last-seen noted on loading
        self.changes = ChangeSet(False)
        self.changes.updated = written
        self.changes.containers = {k for k in old.containers if k in written}
        self.changes.cookieDirty = True
        self.isNew = True
        self.lifetime = lifetime
        self._values = {k: v for k, v in self._values.items() if k in written}
        # An immutable value written again (not its marker) stays immutable.
        kept = {k for k in self._immutables if k in written or IMMUTABLE + k in written}
        written.update((IMMUTABLE + k, "true") for k in kept)
        self._immutables = kept
        self._flashes = {k: v for k, v in self._flashes.items() if FLASH + k in written}
        if OWNER_FIELD not in written:
            self._mark = None

    def _markDestroyed(self) -> None:
        self.changes.forget()
        self._mark = None
        self._values.clear()
        self._flashes.clear()
        self._immutables = NONE

    def _setMark(self, mark: OwnerMark) -> None:
        self._mark = mark
        self._change(OWNER_FIELD, mark.encode())

    def _put(self, key: str, text: str, value: Any) -> None:
        self._change(key, text)
        self._values[key] = value

    def _change(self, name: str, text: str | None) -> None:
        self.changes.change(name, text)

    def _checkAlive(self) -> None:
        self.changes.checkAlive()


MutableMapping.register(Session)

takeChangeParts = Session._changeParts
"""
C{takeChangeParts(session, increments=None)}: hand over what changed in
C{session} since the last call, as the fields of a L{SessionChanges} in
order, and forget it (the request session's operation; a plain alias of
the method, to spare a call per save).
"""


def takeChanges(
    session: Session, increments: Mapping[str, int] | None = None
) -> SessionChanges:
    """
    C{takeChangeParts}, as a L{SessionChanges} (with C{increments}).
    """
    return changesRecord(takeChangeParts(session, increments))
