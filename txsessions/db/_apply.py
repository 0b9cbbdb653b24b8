"""
Applying a L{SessionChanges} to a session's fields held as a C{dict}: the
memory database does it in place, the embedded databases to a copy they
then write back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..records import SessionChanges
from ..values import integerOrZero


def applyChanges(fields: dict[str, str], changes: SessionChanges) -> dict[str, int]:
    """
    Change C{fields} as C{changes} says.

    @param fields: a session's fields, each value JSON text; changed in place.
    @param changes: what to change.
    @return: the new value of each incremented key.
    """
    return applyParts(
        fields, changes.clear, changes.deleted, changes.updated, changes.increments
    )


def applyParts(
    fields: dict[str, str],
    clear: bool,
    deleted: Iterable[str],
    updated: Mapping[str, str],
    increments: Mapping[str, int],
) -> dict[str, int]:
    """
    L{applyChanges}, given the fields of a L{SessionChanges} it uses.
    """
    if clear:
        fields.clear()
    for name in deleted:
        fields.pop(name, None)
    fields.update(updated)
    if not increments:
        return {}
    incremented = {}
    for name, delta in increments.items():
        value = integerOrZero(fields.get(name)) + delta
        fields[name] = str(value)
        incremented[name] = value
    return incremented
