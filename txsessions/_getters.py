# -*- test-case-name: tests.test_getters -*-
"""
Iris's typed getters (C{GetString}, C{GetIntDefault}, ...) and C{decode}
(Iris: C{Decode}), for L{txsessions.Session}.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, cast

import attrs

from .conversions import toBoolean, toFloat, toInt, toString
from .errors import EntryError, EntryNotFound, EntryTypeError

T = TypeVar("T")

_missing: Any = object()


class TypedGetters:
    """
    The typed getters of a session, on the values it holds in C{_values}.
    """

    __slots__ = ()

    _values: dict[str, Any]

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
        value = self._values.get(key)
        if type(value) is int:  # the common case, without two more calls
            return value
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

    def decode(self, key: str, into: type[T]) -> T:
        """
        Build an attrs class or a dataclass from the C{dict} stored under
        C{key}, as C{into(**value)}.

        @param key: a session key.
        @param into: the class.
        @return: the instance.
        @raise EntryNotFound: when there is no such key.
        @raise EntryTypeError: when the value is no C{dict} or does not fit
            the class (its fields, or its own validation, refuse it).
        """
        if not (attrs.has(into) or dataclasses.is_dataclass(into)):
            raise TypeError(f"{into!r} is neither an attrs class nor a dataclass")
        value = self._entry(key)
        if not isinstance(value, dict):
            raise EntryTypeError(key, f"session key {key!r} holds no object to decode")
        try:
            return cast(T, into(**copy.deepcopy(value)))
        except (TypeError, ValueError) as e:
            # A missing or unknown field, or one the class's own validation
            # refuses (attrs validators, a dataclass's __post_init__).
            raise EntryTypeError(
                key, f"session key {key!r} does not fit {into.__name__}: {e}"
            ) from None

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
