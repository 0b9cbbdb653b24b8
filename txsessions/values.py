# -*- test-case-name: tests.test_session -*-
"""
How session values are stored: each value as its own JSON text.

JSON keeps every database honest: an C{int} comes back an C{int}, a tuple
comes back a list in memory as in Redis, and nothing is ever pickled.

A value is at most L{MAX_DEPTH} lists and dicts deep and at most
L{MAX_VALUE_BYTES} long once encoded: L{encodeValue} refuses anything more
with L{ValueNotSerializable}, and L{decodeValue} refuses a stored text
nested deeper (written by an older version, or planted in the database)
with L{ValueNotDecodable}, before the recursive parser sees it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

from .errors import ValueNotDecodable, ValueNotSerializable

MAX_DEPTH = 64
"""
How many lists and dicts deep a value may be nested: C{[[1]]} is 2 deep.
Far beyond what an application stores, and far below the depth at which
Python's recursive encoder and decoder fail (about 1,000).
"""

MAX_VALUE_BYTES = 1 << 20
"""
The most one encoded value may weigh, in UTF-8 bytes (1 MiB): a session
is sent to the database whole on every change, so a value this size
already costs every request that changes it; every database accepts it
(Redis allows 512 MiB a field, SQLite 1 GB a row, and LMDB's environment
is L{txsessions.db.lmdb.MAP_SIZE}).
"""

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_decoder = json.JSONDecoder()
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]
_quote = json.encoder.encode_basestring
"""
What C{_encoder} writes for a C{str} (it does not escape non-ASCII).
"""
_structure = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
"""
A JSON string (skipped whole, so that brackets inside it do not count), or
a bracket.
"""


_SCALAR = frozenset('"-0123456789tfn')
"""
The first characters of JSON text holding a scalar: no decoder recurses
into what follows one (trailing text is an error, not parsed).
"""


def _tooDeep(text: str) -> bool:
    """
    Whether JSON text nests lists and dicts deeper than L{MAX_DEPTH}.

    Text holding no more brackets than that cannot; only text holding more
    is scanned (strings skipped), without recursion.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for match in _structure.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in "]}":
            depth -= 1
    return False


def encodeValue(key: object, value: object) -> str:
    """
    Serialise a session value.

    @param key: the session key the value goes under; must be a C{str} not
        starting with NUL, which marks txsessions' own fields.
    @param value: C{str}, C{int}, C{float} (finite), C{bool}, C{None}, or
        lists and dicts (with C{str} keys) of them, at most L{MAX_DEPTH}
        deep and L{MAX_VALUE_BYTES} long once encoded.
    @return: its JSON text.
    @raise ValueNotSerializable: when C{key} or C{value} cannot be stored.
    """
    kind = type(value)
    if kind is int and type(key) is str and key.isascii() and key[:1] != "\x00":
        # The commonest value under the commonest key, without the checks
        # that no integer needs (its text is ASCII, flat and short).
        try:
            text = repr(value)
        except ValueError:  # more digits than int's str allows
            pass
        else:
            if len(text) <= MAX_VALUE_BYTES:
                return text
    key = checkKey(key)
    try:
        if kind is int:
            text = repr(value)
        elif kind is str:
            text = _quote(cast(str, value))
        else:
            text = _encoder.encode(value)
        # Every database stores UTF-8: a lone surrogate would fail the save.
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if not key.isascii():
            key.encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValueNotSerializable(
            f"the value for session key {key!r} is not JSON-serialisable: {e}"
        ) from None
    except RecursionError:
        raise ValueNotSerializable(
            f"the value for session key {key!r} is nested more than {MAX_DEPTH} deep"
        ) from None
    if size > MAX_VALUE_BYTES:
        raise ValueNotSerializable(
            f"the value for session key {key!r} is {size} bytes encoded, "
            f"more than {MAX_VALUE_BYTES}"
        )
    if kind is not str and text[:1] in "[{":
        if _tooDeep(text):
            raise ValueNotSerializable(
                f"the value for session key {key!r} is nested more than "
                f"{MAX_DEPTH} deep"
            )
        if "{" in text and not _keysAreStrings(value):
            # The encoder would write 1 as "1": read back, it would differ.
            raise ValueNotSerializable(
                f"the value for session key {key!r} has a dict whose keys are "
                "not all str"
            )
    return text


def _keysAreStrings(value: object) -> bool:
    """
    @return: whether every dict in C{value} (a JSON value, its nesting
        already bounded) has C{str} keys only.
    """
    waiting = [value]
    while waiting:
        item = waiting.pop()
        if isinstance(item, dict):
            for name, inner in item.items():
                if not isinstance(name, str):
                    return False
                if isinstance(inner, (dict, list, tuple)):
                    waiting.append(inner)
        elif isinstance(item, (list, tuple)):
            waiting.extend(x for x in item if isinstance(x, (dict, list, tuple)))
    return True


def checkKey(key: object) -> str:
    """
    @param key: a session key, as an application names one.
    @return: C{key}.
    @raise ValueNotSerializable: when it is no C{str}, or starts with NUL,
        which marks txsessions' own fields.
    """
    if not isinstance(key, str):
        raise ValueNotSerializable(f"session keys are str, not {type(key).__name__}")
    if key.startswith("\x00"):
        raise ValueNotSerializable("session keys may not start with NUL")
    return key


def checkIncrement(key: object, n: object) -> None:
    """
    Check an increment before any database sees it: the key as L{set
    <txsessions.Session.set>} would, and a delta that is a 64-bit integer,
    as every database counts in (a sum past 64 bits is refused by the
    database: see L{isInt64}).

    @raise ValueNotSerializable: when C{key} cannot be stored.
    @raise TypeError: when C{n} is not an C{int} (a C{bool} is not).
    @raise ValueError: when it is not a 64-bit integer.
    """
    encodeValue(key, n)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"increments are integers, not {type(n).__name__}")
    if not isInt64(n):
        raise ValueError("increments are 64-bit integers (less than 2**63 in size)")


def isInt64(n: int) -> bool:
    """
    @return: whether C{n} is a 64-bit integer: what a counter may hold in
        every database, as Redis's C{HINCRBY} counts.
    """
    return -(2**63) <= n < 2**63


def isOwnerName(owner: object) -> bool:
    """
    @return: whether C{owner} may be stored as a session's owner: a C{str}
        of 1 to 256 bytes in UTF-8 (every database stores UTF-8: a lone
        surrogate is refused; LMDB's owner index holds it in a key of at
        most 511 bytes), with no NUL.
    """
    if not isinstance(owner, str) or not owner or "\x00" in owner:
        return False
    try:
        return len(owner.encode()) <= 256
    except UnicodeEncodeError:
        return False


def integerOrZero(text: str | None) -> int:
    """
    Read a stored value as a counter.

    @param text: JSON text, or C{None} for a missing key.
    @return: the integer it holds, or 0 when it holds no integer.
    """
    if text is None:
        return 0
    try:
        value = decodeValue(text)
    except ValueError:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def decodeValue(text: str) -> Any:
    """
    Parse a stored session value.

    @param text: JSON text written by L{encodeValue}.
    @return: the value.
    @raise ValueNotDecodable: (a C{ValueError}) when C{text} is not JSON or
        is nested deeper than L{MAX_DEPTH}, whatever went wrong reading it.
    """
    # The decoder's own scanner, in C: one call for the compact JSON that
    # encodeValue writes.  Anything else (white space, trailing text, no
    # JSON at all) goes to the full decoder, which accepts or refuses it.
    # Depth is checked first: the scanner recurses, and a record nested a
    # thousand deep would raise RecursionError from within it.
    try:
        if text[:1] not in _SCALAR and _tooDeep(text):
            raise ValueNotDecodable(
                f"a stored value is nested more than {MAX_DEPTH} deep"
            )
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):
            return _decoder.decode(text)
    except ValueNotDecodable:
        raise
    except (ValueError, RecursionError) as e:
        raise ValueNotDecodable(f"a stored value is not JSON: {e}") from None
    return value
