# -*- test-case-name: tests.test_session -*-
"""
The conversions of the typed getters, as Iris makes them.
"""

from __future__ import annotations

from typing import Any

from .errors import EntryTypeError

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _typeName(value: object) -> str:
    return "null" if value is None else type(value).__name__


def toString(key: str, value: Any) -> str:
    """
    A C{str} as it is, an C{int} in decimal.

    @raise EntryTypeError: for any other value.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise EntryTypeError(
        key, f"session key {key!r} holds a {_typeName(value)}, not a string"
    )


def toBoolean(key: str, value: Any) -> bool:
    """
    A C{bool} as it is; a string as Go's C{strconv.ParseBool} reads it
    (C{1 t T TRUE true True}, C{0 f F FALSE false False}).

    @raise EntryTypeError: for any other value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise EntryTypeError(
        key, f"session key {key!r} holds a {_typeName(value)} that is not a boolean"
    )
