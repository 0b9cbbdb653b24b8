# -*- test-case-name: tests.test_session,tests.test_flashes -*-
r"""
L{Session}: one client's values, loaded when the request starts, changed in
memory, and saved in one batch before the response completes.

Besides the application's values a session holds two kinds of field of its
own, stored beside them under names starting with NUL (which application
keys may not): flash messages (C{"\\0f" + key}) and the marks of immutable
values (C{"\\0i" + key}).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import (
    Callable,
    ItemsView,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
from twisted.internet.defer import Deferred

from .conversions import toBoolean, toFloat, toInt, toString
from .errors import (
    EntryError,
    EntryNotFound,
    EntryTypeError,
    ImmutableValueError,
    SessionDestroyedError,
)
from .records import Lifetime, SessionChanges
from .values import decodeValue, encodeValue

if TYPE_CHECKING:
    from .manager import _RequestSession

T = TypeVar("T")

FLASH = "\x00f"
"""
The prefix of the stored name of a flash message.
"""

IMMUTABLE = "\x00i"
"""
The prefix of the stored name that marks a value immutable.
"""

_missing: Any = object()


def splitFields(
    fields: Mapping[str, str],
) -> tuple[dict[str, Any], set[str], dict[str, Any]]:
    """
    Decode a stored session's fields.

    @param fields: the fields, each value JSON text.
    @return: the values, the immutable keys, and the flash messages.
    @raise ValueError: when a field is not JSON.
    """
    values: dict[str, Any] = {}
    immutables: set[str] = set()
    flashes: dict[str, Any] = {}
    for name, text in fields.items():
        if name[:1] != "\x00":
            values[name] = decodeValue(text)
        elif name.startswith(FLASH):
            flashes[name[len(FLASH) :]] = decodeValue(text)
        elif name.startswith(IMMUTABLE):
            immutables.add(name[len(IMMUTABLE) :])
    return values, immutables, flashes


class Session:
    """
    A client's session, as one request sees it (Iris: C{sessions.Session}).

    Reads are synchronous, on the values loaded when the request started.
    Writes change those values at once and are saved together before the
    response completes; a session nobody changed is not written, and a new
    session nobody wrote to is neither stored nor given a cookie.

    Values are JSON: C{str}, C{int}, C{float}, C{bool}, C{None}, and lists
    and dicts of them.  A value is stored as it was when L{set} was called;
    to change a list or dict held in the session, L{set} it again.

    @ivar isNew: whether this request created the session: the client sent
        no cookie, or one naming no live session.
    @ivar lifetime: when the session was created and when it expires.
    """

    def __init__(
        self,
        owner: _RequestSession,
        sessionID: str | None,
        key: str | None,
        lifetime: Lifetime,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        """
        @param owner: the request this session belongs to.
        @param sessionID: its id, or C{None} for a new session (one is drawn
            when it is first needed).
        @param key: its store key, or C{None} with C{sessionID}.
        @param lifetime: its lifetime.
        @param fields: its stored fields, or C{None} for a new session.
        @raise ValueError: when a stored field is not JSON.
        """
        self._owner = owner
        self._id = sessionID
        self._key = key
        self.lifetime = lifetime
        self.isNew = fields is None
        self._stored = fields is not None
        self._values, self._immutables, self._flashes = splitFields(fields or {})
        self._readFlashes: set[str] = set()
        self._updated: dict[str, str] = {}
        self._deleted: set[str] = set()
        self._cleared = False
        self._lifetimeChanged = False
        self._cookieDirty = False
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

    @property
    def expiresAt(self) -> float | None:
        """
        When the session expires, or C{None} when it has no server-side
        lifetime.
        """
        return self.lifetime.expiresAt

    def remaining(self) -> float | None:
        """
        @return: the seconds left before the session expires (0 once it has),
            or C{None} when it has no server-side lifetime.
        """
        if self.lifetime.expiresAt is None:
            return None
        return max(self.lifetime.expiresAt - self._owner.now(), 0.0)

    @property
    def destroyed(self) -> bool:
        """
        Whether L{destroy} was called.
        """
        return self._destroyed

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
        first set.
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

    def decode(self, key: str, into: type[T]) -> T:
        """
        Build an attrs class or a dataclass from the C{dict} stored under
        C{key}, as C{into(**value)}.

        @param key: a session key.
        @param into: the class.
        @return: the instance.
        @raise EntryNotFound: when there is no such key.
        @raise EntryTypeError: when the value is no C{dict} or does not fit
            the class.
        """
        if not (attrs.has(into) or dataclasses.is_dataclass(into)):
            raise TypeError(f"{into!r} is neither an attrs class nor a dataclass")
        value = self._entry(key)
        if not isinstance(value, dict):
            raise EntryTypeError(key, f"session key {key!r} holds no object to decode")
        try:
            return cast(T, into(**copy.deepcopy(value)))
        except TypeError as e:
            raise EntryTypeError(
                key, f"session key {key!r} does not fit {into.__name__}: {e}"
            ) from None

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
        return self._orDefault(toString, key, default)

    def getInt(self, key: str) -> int:
        """
        @return: the integer under C{key}; a float is truncated and a decimal
            string parsed.
        @raise EntryNotFound: when there is no such key.
        @raise EntryTypeError: when the value cannot be read as an integer.
        """
        return toInt(key, self._entry(key))

    def getIntDefault(self, key: str, default: int) -> int:
        """
        @return: L{getInt}, or C{default} when it raises.
        """
        return self._orDefault(toInt, key, default)

    getInt64 = getInt
    "Iris's C{GetInt64}: the same as L{getInt}, as Python has one C{int}."
    getInt64Default = getIntDefault
    "Iris's C{GetInt64Default}: the same as L{getIntDefault}."

    def getFloat64(self, key: str) -> float:
        """
        @return: the number under C{key} as a C{float}; a numeric string is
            parsed.
        @raise EntryNotFound: when there is no such key.
        @raise EntryTypeError: when the value cannot be read as a number.
        """
        return toFloat(key, self._entry(key))

    def getFloat64Default(self, key: str, default: float) -> float:
        """
        @return: L{getFloat64}, or C{default} when it raises.
        """
        return self._orDefault(toFloat, key, default)

    getFloat32 = getFloat64
    "Iris's C{GetFloat32}: the same as L{getFloat64}, as Python has one float."
    getFloat32Default = getFloat64Default
    "Iris's C{GetFloat32Default}: the same as L{getFloat64Default}."

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
        return self._orDefault(toBoolean, key, default)

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
        self._checkAlive()
        if key in self._immutables:
            raise ImmutableValueError(
                f"session key {key!r} holds an immutable value: use setImmutable "
                "to replace it, or delete it first"
            )
        self._put(key, encodeValue(key, value), value)

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
            self._immutables.add(key)
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
        self._remove(key)
        if key in self._immutables:
            self._immutables.discard(key)
            self._remove(IMMUTABLE + key)
        return True

    def clear(self) -> None:
        """
        Remove every value; the session, its id and its flash messages
        remain.

        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        self._values.clear()
        self._immutables.clear()
        self._updated = {k: v for k, v in self._updated.items() if k.startswith(FLASH)}
        self._deleted = {k for k in self._deleted if k.startswith(FLASH)}
        self._cleared = self._stored

    def increment(self, key: str, n: int = 1) -> Deferred[int]:
        """
        Add C{n} to the integer under C{key}, atomically in the database: two
        requests incrementing one key at once never lose an update.  A key
        holding no integer counts as 0.  Other changes made so far are saved
        in the same round trip.

        @return: a L{Deferred} firing with the new value.
        @raise ImmutableValueError: when the key holds an immutable value.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        self._checkAlive()
        encodeValue(key, n)
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"increments are integers, not {type(n).__name__}")
        if key in self._immutables:
            raise ImmutableValueError(f"session key {key!r} holds an immutable value")
        return self._owner.increment(self, key, n)

    def decrement(self, key: str, n: int = 1) -> Deferred[int]:
        """
        Subtract C{n} from the integer under C{key}; see L{increment}.

        @return: a L{Deferred} firing with the new value.
        """
        return self.increment(key, -n)

    def regenerate(self) -> Deferred[None]:
        """
        Give the session a new id, keeping its data, and send the client the
        new cookie; the old id is dead as soon as the returned L{Deferred}
        fires.  Call it whenever privileges change, above all at login, so
        that an id planted before cannot follow the user in (session
        fixation).  Destroy listeners hear of the old key with
        L{DestroyReason.regenerated}.

        @return: a L{Deferred} firing once the database holds the session
            under its new key; the response waits for it in any case.
        @raise SessionDestroyedError: when the session was destroyed.
        """
        return self._owner.regenerate(self)

    def destroy(self) -> Deferred[None]:
        """
        Remove the session from the database, tell the destroy listeners and
        make the client forget its cookie.  Later changes raise
        L{SessionDestroyedError}.

        @return: a L{Deferred} firing once the database has removed it; the
            response waits for it in any case.
        """
        return self._owner.destroy(self)

    # Flash messages

    def setFlash(self, key: str, value: Any) -> None:
        """
        Store a flash message: readable until it is read with L{getFlash}
        (or L{getFlashes}, L{getFlashString}), and removed at the end of the
        request that read it.

        @raise ValueNotSerializable: when C{key} or C{value} is not storable.
        """
        self._checkAlive()
        self._change(FLASH + key, encodeValue(key, value))
        self._flashes[key] = value
        self._readFlashes.discard(key)

    def hasFlash(self) -> bool:
        """
        @return: whether the session holds any flash message, read ones
            included until the request ends.
        """
        return bool(self._flashes)

    def peekFlash(self, key: str) -> Any:
        """
        @return: the flash message under C{key}, or C{None}, without marking
            it read.
        """
        return self._flashes.get(key)

    def getFlash(self, key: str) -> Any:
        """
        @return: the flash message under C{key}, or C{None}; it is marked
            read, and removed when the request ends.
        """
        if key in self._flashes:
            self._readFlashes.add(key)
        return self._flashes.get(key)

    def getFlashes(self) -> dict[str, Any]:
        """
        @return: every flash message, all marked read.
        """
        self._readFlashes.update(self._flashes)
        return dict(self._flashes)

    def getFlashString(self, key: str) -> str:
        """
        @return: the flash message under C{key} if it is a string, else
            C{""}; it is marked read either way.
        """
        return self.getFlashStringDefault(key, "")

    def getFlashStringDefault(self, key: str, default: str) -> str:
        """
        @return: the flash message under C{key} if it is a string, else
            C{default}; it is marked read either way.
        """
        value = self.getFlash(key)
        return value if isinstance(value, str) else default

    def deleteFlash(self, key: str) -> None:
        """
        Remove a flash message now.
        """
        self._checkAlive()
        if self._flashes.pop(key, _missing) is not _missing:
            self._remove(FLASH + key)
        self._readFlashes.discard(key)

    def clearFlashes(self) -> None:
        """
        Remove every flash message now.
        """
        for key in list(self._flashes):
            self.deleteFlash(key)

    # Used by the manager

    def _setLifetime(self, lifetime: Lifetime) -> None:
        self._checkAlive()
        self.lifetime = lifetime
        if self._stored:
            self._lifetimeChanged = True
            self._cookieDirty = True

    def _hasChanges(self) -> bool:
        return not self._destroyed and bool(
            self._updated
            or self._deleted
            or self._cleared
            or self._lifetimeChanged
            or self._readFlashes
        )

    def _takeChanges(
        self, increments: Mapping[str, int] | None = None
    ) -> SessionChanges:
        """
        Hand over what changed since the last call, and forget it.  The
        session counts as stored from then on.
        """
        for key in self._readFlashes:
            self._change(FLASH + key, None)
        self._readFlashes = set()
        create = not self._stored
        updated = self._updated
        if self._cleared and not create:
            updated.update(
                (FLASH + k, encodeValue(k, v))
                for k, v in self._flashes.items()
                if FLASH + k not in self._deleted
            )
        changes = SessionChanges(
            create=create,
            lifetime=self.lifetime if create or self._lifetimeChanged else None,
            clear=self._cleared and not create,
            deleted=frozenset() if create else frozenset(self._deleted),
            updated=updated,
            increments=increments or {},
        )
        self._stored = True
        self._updated = {}
        self._deleted = set()
        self._cleared = False
        self._lifetimeChanged = False
        return changes

    def _incremented(self, values: Mapping[str, int]) -> None:
        self._values.update(values)

    def _markDestroyed(self) -> None:
        self._destroyed = True
        for collection in (self._values, self._immutables, self._flashes):
            collection.clear()
        self._updated.clear()
        self._deleted.clear()
        self._readFlashes.clear()
        self._cleared = self._lifetimeChanged = self._cookieDirty = False

    def _put(self, key: str, text: str, value: Any) -> None:
        self._change(key, text)
        self._values[key] = value

    def _remove(self, name: str) -> None:
        self._change(name, None)

    def _change(self, name: str, text: str | None) -> None:
        if text is None:
            self._updated.pop(name, None)
            self._deleted.add(name)
        else:
            self._updated[name] = text
            self._deleted.discard(name)

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

    def _orDefault(self, convert: Callable[[str, Any], T], key: str, default: T) -> T:
        value = self._values.get(key, _missing)
        if value is _missing:
            return default
        try:
            return convert(key, value)
        except EntryError:
            return default

    # The mapping protocol, as Flask, Django and aiohttp-session users
    # expect: each operation is one of the Iris-named methods above, with
    # their change tracking, immutables and errors.  Iris's get(key) and
    # Mapping.get(key, default) are the one L{get}: C{default} is C{None}
    # unless given.  Flash messages are not in the mapping.  Sessions
    # compare by identity, not as mappings.

    def __getitem__(self, key: str) -> Any:
        """
        C{session[key]}: L{get}, but a missing key raises.

        @raise EntryNotFound: (a C{KeyError}) when the session has no such
            key.
        """
        if key not in self:
            raise EntryNotFound(key, f"the session holds no key {key!r}")
        return self.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        """
        C{session[key] = value}: L{set}.
        """
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        """
        C{del session[key]}: L{delete}, but a missing key raises.

        @raise EntryNotFound: (a C{KeyError}) when the session has no such
            key.
        """
        if not self.delete(key):
            raise EntryNotFound(key, f"the session holds no key {key!r}")

    def __iter__(self) -> Iterator[str]:
        """
        @return: an iterator over the keys as they were when it was made, in
            the order they were first set.
        """
        return iter(self.getAll())

    def keys(self) -> KeysView[str]:
        """
        @return: the keys, as they are now (a view of a copy).
        """
        return self.getAll().keys()

    def values(self) -> ValuesView[Any]:
        """
        @return: the values, as they are now (a view of a copy).
        """
        return self.getAll().values()

    def items(self) -> ItemsView[str, Any]:
        """
        @return: the C{(key, value)} pairs, as they are now (a view of a
            copy).
        """
        return self.getAll().items()

    def pop(self, key: str, default: Any = _missing) -> Any:
        """
        Remove a key and return its value (L{get}, then L{delete}).

        @param default: returned when the session has no such key.
        @raise EntryNotFound: (a C{KeyError}) when it has none and no
            C{default} is given.
        """
        if key not in self:
            if default is _missing:
                raise EntryNotFound(key, f"the session holds no key {key!r}")
            return default
        value = self.get(key)
        self.delete(key)
        return value

    def popitem(self) -> tuple[str, Any]:
        """
        Remove the key set last and return it with its value.

        @raise KeyError: when the session holds no value.
        """
        keys = list(self.getAll())
        if not keys:
            raise KeyError("popitem(): the session holds no value")
        return keys[-1], self.pop(keys[-1])

    def setdefault(self, key: str, default: Any = None) -> Any:
        """
        L{set} C{key} to C{default} unless the session holds it.

        @return: the value under C{key}.
        """
        if key not in self:
            self.set(key, default)
        return self.get(key)

    def update(self, *other: Any, **values: Any) -> None:
        """
        L{set} every pair of a mapping, or an iterable of pairs, and of the
        keyword arguments, in order.
        """
        for key, value in dict(*other, **values).items():
            self.set(key, value)


MutableMapping.register(Session)
