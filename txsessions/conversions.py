# -*- test-case-name: tests.test_getters -*-
"""
The conversions of the typed getters, as Iris's §3 table makes them, with
64-bit floats throughout (Iris parses float strings at 32 bits).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import EntryTypeError

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _typeName(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _refuse(key: str, value: object, kind: str) -> EntryTypeError:
    return EntryTypeError(
        key, f"session key {key!r} holds a {_typeName(value)} that is not {kind}"
    )


def _isInt(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def toString(key: str, value: Any) -> str:
    """
    A C{str} as it is, an C{int} in decimal.

    @raise EntryTypeError: for any other value.
    """
    if isinstance(value, str):
        return value
    if _isInt(value):
        return str(value)
    raise _refuse(key, value, "a string")


def toInt(key: str, value: Any) -> int:
    """
    An C{int} as it is, a finite C{float} truncated, a decimal string parsed.

    @raise EntryTypeError: for any other value.
    """
    if type(value) is int:
        return value
    if _isInt(value) or (isinstance(value, float) and math.isfinite(value)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise _refuse(key, value, "an integer")


def toFloat(key: str, value: Any) -> float:
    """
    A C{float} or C{int} as a C{float}, a numeric string parsed.

    @raise EntryTypeError: for any other value.
    """
    if _isInt(value) or isinstance(value, float):
        try:
            return float(value)
        except OverflowError:  # an integer too large for a float
            raise _refuse(key, value, "a number") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _refuse(key, value, "a number")


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
    raise _refuse(key, value, "a boolean")
