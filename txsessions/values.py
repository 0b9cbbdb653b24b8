# -*- test-case-name: tests.test_session -*-
"""
How session values are stored: each value as its own JSON text.

JSON keeps every database honest: an C{int} comes back an C{int}, a tuple
comes back a list in memory as in Redis, and nothing is ever pickled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from .errors import ValueNotSerializable

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_decoder = json.JSONDecoder()
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]
_quote = json.encoder.encode_basestring
"""
What C{_encoder} writes for a C{str} (it does not escape non-ASCII).
"""


def encodeValue(key: object, value: object) -> str:
    """
    Serialise a session value.

    @param key: the session key the value goes under; must be a C{str} not
        starting with NUL, which marks txsessions' own fields.
    @param value: C{str}, C{int}, C{float} (finite), C{bool}, C{None}, or
        lists and dicts (with C{str} keys) of them.
    @return: its JSON text.
    @raise ValueNotSerializable: when C{key} or C{value} cannot be stored.
    """
    if not isinstance(key, str):
        raise ValueNotSerializable(f"session keys are str, not {type(key).__name__}")
    if key.startswith("\x00"):
        raise ValueNotSerializable("session keys may not start with NUL")
    kind = type(value)
    try:
        if kind is int:
            text = repr(value)
        elif kind is str:
            text = _quote(cast(str, value))
        else:
            text = _encoder.encode(value)
        # Every database stores UTF-8: a lone surrogate would fail the save.
        if not text.isascii():
            text.encode("utf-8")
        if not key.isascii():
            key.encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValueNotSerializable(
            f"the value for session key {key!r} is not JSON-serialisable: {e}"
        ) from None
    return text


def integerOrZero(text: str | None) -> int:
    """
    Read a stored value as a counter.

    @param text: JSON text, or C{None} for a missing key.
    @return: the integer it holds, or 0 when it holds no integer.
    """
    if text is None:
        return 0
    try:
        value = _decoder.decode(text)
    except ValueError:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def decodeValue(text: str) -> Any:
    """
    Parse a stored session value.

    @param text: JSON text written by L{encodeValue}.
    @return: the value.
    @raise ValueError: when C{text} is not JSON.
    """
    # The decoder's own scanner, in C: one call for the compact JSON that
    # encodeValue writes.  Anything else (white space, trailing text, no
    # JSON at all) goes to the full decoder, which accepts or refuses it.
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return _decoder.decode(text)
    return value
