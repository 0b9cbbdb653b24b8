# -*- test-case-name: tests.test_session -*-
"""
L{Session}: one client's values, loaded when the request starts, changed in
memory, and saved in one batch before the response completes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred

from .conversions import toBoolean, toString
from .errors import EntryError, EntryNotFound, SessionDestroyedError
from .records import Lifetime, SessionChanges
from .values import encodeValue

if TYPE_CHECKING:
    from .manager import _RequestSession

T = TypeVar("T")

_missing: Any = object()


class Session:
    """
    A client's session, as one request sees it.

    Reads are synchronous, on the values loaded when the request started.
    Writes change those values at once and are saved together before the
    response completes; a session nobody changed is not written, and a new
    session nobody wrote to is neither stored nor given a cookie.

    Values are JSON: C{str}, C{int}, C{float}, C{bool}, C{None}, and lists
    and dicts of them.  A value is stored as it was when L{set} was called;
    to change a list or dict held in the session, L{set} it again.

    @ivar isNew: whether this request created the session: the client sent
        no cookie, or one naming no live session.
    @ivar lifetime: when the session was created and when it expires, once it
        is stored; C{None} for a new session until it is saved.
    """

    def __init__(
        self,
        owner: _RequestSession,
        sessionID: str | None,
        key: str | None,
        values: dict[str, Any],
        lifetime: Lifetime | None,
    ) -> None:
        self._owner = owner
        self._id = sessionID
        self._key = key
        self._values = values
        self.lifetime = lifetime
        self.isNew = lifetime is None
        self._updated: dict[str, str] = {}
        self._deleted: set[str] = set()
        self._cleared = False
        self._destroyed = False

    def __repr__(self) -> str:
        state = "destroyed" if self._destroyed else "new" if self.isNew else "loaded"
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

    # Reading

    def get(self, key: str, default: Any = None) -> Any:
        """
        @param key: a session key.
        @param default: returned when the session has no such key.
        @return: the value stored under C{key}, or C{default}.
        """
        return self._values.get(key, default)

    def getAll(self) -> dict[str, Any]:
        """
        @return: a new C{dict} of every key and value.
        """
        return dict(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def getString(self, key: str) -> str:
        """
        @return: the string under C{key}; an C{int} is given in decimal.
        @raise EntryNotFound: when there is no such key.
        @raise EntryTypeError: when the value is of another type.
        """
        return toString(key, self._entry(key))

    def getStringDefault(self, key: str, default: str) -> str:
        """
        @return: L{getString}, or C{default} when it raises.
        """
        return self._orDefault(self.getString, key, default)

    def getBoolean(self, key: str) -> bool:
        """
        @return: the boolean under C{key}; the strings C{"true"}, C{"1"},
            C{"false"}, C{"0"} and their kin are read as booleans.
        @raise EntryNotFound: when there is no such key.
        @raise EntryTypeError: when the value is of another type.
        """
        return toBoolean(key, self._entry(key))

    def getBooleanDefault(self, key: str, default: bool) -> bool:
        """
        @return: L{getBoolean}, or C{default} when it raises.
        """
        return self._orDefault(self.getBoolean, key, default)

    # Writing

    def set(self, key: str, value: Any) -> None:
        """
        Store a value, replacing any under the same key.

        @param key: a C{str}.
        @param value: a JSON value.
        @raise ValueNotSerializable: when C{key} or C{value} is not storable.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        self._updated[key] = encodeValue(key, value)
        self._deleted.discard(key)
        self._values[key] = value

    def delete(self, key: str) -> bool:
        """
        Remove a key.

        @return: whether the session held it.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        existed = self._values.pop(key, _missing) is not _missing
        self._updated.pop(key, None)
        if existed:
            self._deleted.add(key)
        return existed

    def clear(self) -> None:
        """
        Remove every value; the session and its id remain.

        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        self._values.clear()
        self._updated.clear()
        self._deleted.clear()
        self._cleared = True

    def destroy(self) -> Deferred[None]:
        """
        Remove the session from the database, tell the destroy listeners and
        make the client forget its cookie.  Later changes raise
        L{SessionDestroyedError}; L{txsessions.Sessions.start} in the same
        request then begins a new session.

        @return: a L{Deferred} firing once the database has removed it; the
            response waits for it in any case.
        """
        return self._owner.destroy(self)

    @property
    def destroyed(self) -> bool:
        """
        Whether L{destroy} was called.
        """
        return self._destroyed

    # Used by the manager

    def _takeChanges(self, lifetime: Lifetime | None) -> SessionChanges | None:
        """
        Hand over what changed since the last call, and forget it.

        @param lifetime: the lifetime a new session is created with (ignored
            for a stored session).
        @return: the changes, or C{None} when nothing changed.
        """
        if self._destroyed or not (self._updated or self._deleted or self._cleared):
            return None
        create = self.lifetime is None and lifetime is not None
        changes = SessionChanges(
            create=create,
            lifetime=lifetime if create else None,
            clear=self._cleared and not create,
            deleted=frozenset(self._deleted) if not create else frozenset(),
            updated=self._updated,
        )
        if create:
            self.lifetime = lifetime
        self._updated = {}
        self._deleted = set()
        self._cleared = False
        return changes

    def _markDestroyed(self) -> None:
        self._destroyed = True
        self._values.clear()
        self._updated.clear()
        self._deleted.clear()

    def _checkAlive(self) -> None:
        if self._destroyed:
            raise SessionDestroyedError(
                "this session was destroyed; start a new one with Sessions.start"
            )

    def _entry(self, key: str) -> Any:
        value = self._values.get(key, _missing)
        if value is _missing:
            raise EntryNotFound(key, f"the session holds no key {key!r}")
        return value

    def _orDefault(self, getter: Callable[[str], T], key: str, default: T) -> T:
        try:
            return getter(key)
        except EntryError:
            return default
