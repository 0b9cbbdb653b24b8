"""
Applying a L{SessionChanges} to a session's fields held as a C{dict}: the
memory database does it in place, the embedded databases to a copy they
then write back.
"""

from __future__ import annotations

from ..records import SessionChanges
from ..values import integerOrZero


def applyChanges(fields: dict[str, str], changes: SessionChanges) -> dict[str, int]:
    """
    Change C{fields} as C{changes} says.

    @param fields: a session's fields, each value JSON text; changed in place.
    @param changes: what to change.
    @return: the new value of each incremented key.
    """
    if changes.clear:
        fields.clear()
    for name in changes.deleted:
        fields.pop(name, None)
    fields.update(changes.updated)
    incremented = {}
    for name, delta in changes.increments.items():
        value = integerOrZero(fields.get(name)) + delta
        fields[name] = str(value)
        incremented[name] = value
    return incremented
