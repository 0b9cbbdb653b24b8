"""
Applying a L{SessionChanges} to a session's fields held as a C{dict}: the
memory database does it in place, the embedded databases to a copy they
then write back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ..errors import CounterRangeError
from ..records import SessionChanges
from ..values import integerOrZero, isInt64


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
    deleted: Collection[str],
    updated: Mapping[str, str],
    increments: Mapping[str, int],
) -> dict[str, int]:
    """
    L{applyChanges}, given the fields of a L{SessionChanges} it uses.

    @raise CounterRangeError: when a counter would leave the 64-bit integers (a
        stored counter or a delta beyond them, or a sum past them), as
        Redis refuses it; C{fields} is left as it was.
    """
    incremented = (
        _incremented(fields, clear, deleted, updated, increments) if increments else {}
    )
    if clear:
        fields.clear()
    for name in deleted:
        fields.pop(name, None)
    fields.update(updated)
    for name, value in incremented.items():
        fields[name] = str(value)
    return incremented


def _incremented(
    fields: Mapping[str, str],
    clear: bool,
    deleted: Collection[str],
    updated: Mapping[str, str],
    increments: Mapping[str, int],
) -> dict[str, int]:
    """
    @return: the value each increment gives, counted on C{fields} as the
        other changes leave them.
    @raise CounterRangeError: when one is no 64-bit integer.
    """
    incremented = {}
    for name, delta in increments.items():
        if name in updated:
            text = updated[name]
        elif clear or name in deleted:
            text = None
        else:
            text = fields.get(name)
        base = integerOrZero(text)
        value = base + delta
        if not (isInt64(base) and isInt64(delta) and isInt64(value)):
            raise CounterRangeError(
                f"RANGE increment refused: counter {name!r} would leave the "
                "64-bit integers; nothing was saved"
            )
        incremented[name] = value
    return incremented
