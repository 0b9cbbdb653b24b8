# -*- test-case-name: tests.test_session,tests.test_flashes -*-
r"""
How a session's fields are stored: the application's values under their
own names, and a session's own fields under names starting with NUL
(which application keys may not): flash messages (C{"\\0f" + key}) and
the marks of immutable values (C{"\\0i" + key}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

from ._changes import NONE, added
from .records import Lifetime, SessionChanges, StoredSession
from .values import decodeValue

FLASH = "\x00f"
"""
The prefix of the stored name of a flash message.
"""

IMMUTABLE = "\x00i"
"""
The prefix of the stored name that marks a value immutable.
"""

Times = tuple[float, float | None]
"""
The fields of a L{Lifetime <txsessions.records.Lifetime>}: when a
session was created and when it expires (C{None}: never).
"""

ChangeParts = tuple[
    bool,
    "Times | None",
    bool,
    "frozenset[str] | set[str]",
    Mapping[str, str],
    Mapping[str, int],
]
"""
The fields of a L{SessionChanges <txsessions.records.SessionChanges>}, in
order, its C{lifetime} as L{Times} and C{deleted} a C{set} or a
C{frozenset}.
"""


def changesRecord(parts: ChangeParts) -> SessionChanges:
    """
    @return: the L{SessionChanges} whose fields C{parts} are, for a database
        that is handed one.
    """
    create, times, clear, deleted, updated, increments = parts
    lifetime = None if times is None else Lifetime(*times)
    return SessionChanges(
        create, lifetime, clear, frozenset(deleted), updated, increments
    )


def changeParts(changes: SessionChanges) -> ChangeParts:
    """
    @return: the fields of C{changes}, for a database whose save takes them
        (L{changesRecord}'s inverse).
    """
    lifetime = changes.lifetime
    return (
        changes.create,
        None if lifetime is None else (lifetime.createdAt, lifetime.expiresAt),
        changes.clear,
        changes.deleted,
        changes.updated,
        changes.increments,
    )


LoadedParts = tuple[float, "float | None", dict[str, str]]
"""
A session as a database's C{loadAtOnce} and C{loadParts} give it: when it
was created, when it expires (C{None}: never), and its fields.
"""


@overload
def storedRecord(parts: LoadedParts) -> StoredSession: ...
@overload
def storedRecord(parts: None) -> None: ...
@overload
def storedRecord(parts: LoadedParts | None) -> StoredSession | None: ...
def storedRecord(parts: LoadedParts | None) -> StoredSession | None:
    """
    @return: the L{StoredSession} whose fields C{parts} are, for a load
        that answers one; C{None} for none.
    """
    if parts is None:
        return None
    createdAt, expiresAt, fields = parts
    return StoredSession(Lifetime(createdAt, expiresAt), fields)


_SMALL = {str(n): n for n in range(1024)}
"""
The JSON text of the smallest non-negative integers, and the integers: the
commonest values a session holds, counters and ids.
"""


def splitFields(
    fields: Mapping[str, str],
) -> tuple[dict[str, Any], set[str] | frozenset[str], dict[str, Any]]:
    """
    Decode a stored session's fields.

    @param fields: the fields, each value JSON text.
    @return: the values, the immutable keys (L{NONE
        <txsessions._changes.NONE>} when none: see
        L{txsessions._changes.added}), and the flash messages.
    @raise ValueError: when a field is not JSON.
    """
    values: dict[str, Any] = {}
    immutables: set[str] | frozenset[str] = NONE
    flashes: dict[str, Any] = {}
    small = _SMALL
    for name, text in fields.items():
        # Only names starting with NUL sort before "\x01".
        if name >= "\x01" or not name:
            # A JSON integer, the commonest value, read without the decoder.
            value = small.get(text)
            if value is not None:
                values[name] = value
            elif text.isdigit() and text.isascii() and text[0] != "0":
                values[name] = int(text)
            else:
                values[name] = decodeValue(text)
        elif name.startswith(FLASH):
            flashes[name[len(FLASH) :]] = decodeValue(text)
        elif name.startswith(IMMUTABLE):
            immutables = added(immutables, name[len(IMMUTABLE) :])
    return values, immutables, flashes
