"""
What the memory database adds to the conformance suite: the garbage
collector's view of a million sessions.
"""

from __future__ import annotations

import gc
import sys

import pytest
from twisted.internet.task import Clock

from txsessions import MemoryDatabase
from txsessions.interfaces import Lifetime, SessionChanges


@pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="CPython 3.14 tracks every dict"
)
def test_sessionsGiveTheGarbageCollectorNothingToTrack() -> None:
    """
    A full collection walks every tracked object: with one per session, it
    took 350 ms at a million sessions.  Sessions, their lifetimes, values and
    expirations add no tracked object (up to CPython 3.13).
    """
    db = MemoryDatabase(Clock())
    gc.collect()
    before = len(gc.get_objects())
    for i in range(1000):
        changes = SessionChanges(
            create=True,
            lifetime=Lifetime(0.0, 100.0 + i % 3),
            updated={"n": "1", "s": '"x"'},
        )
        db.save(f"key{i}", changes)
    gc.collect()
    assert len(gc.get_objects()) - before < 50
