"""
What the memory database adds to the conformance suite: the garbage
collector's view of a million sessions.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.python.failure import Failure

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


def test_aDefaultMemoryDatabaseIsBounded() -> None:
    """
    A default server must survive a flood of new sessions (wrk on /login
    made 32,000 in 10 s, never expiring): by default the memory database
    holds at most L{MemoryDatabase.DEFAULT_MAX_SESSIONS}; 0 lifts the cap.
    """
    from txsessions.db import openDatabase
    from txsessions.errors import SessionLimitError

    limit = MemoryDatabase.DEFAULT_MAX_SESSIONS
    assert 10_000 <= limit <= 1_000_000
    forever = SessionChanges(create=True, lifetime=Lifetime(0.0, None))
    for db in [MemoryDatabase(Clock()), openDatabase("memory:", Clock())]:
        for i in range(limit):
            db.save(f"key{i}", forever)
        failures: list[Failure] = []
        db.save("one more", forever).addErrback(failures.append)
        assert [f.type for f in failures] == [SessionLimitError]
    unbounded = MemoryDatabase(Clock(), maxSessions=0)
    for i in range(limit + 1):
        unbounded.save(f"key{i}", forever)
    assert unbounded.count().result == limit + 1


@pytest.mark.parametrize("bad", [-1, "10", 2.5, None, True])
def test_maxSessionsIsAWholeNumber(bad: Any) -> None:
    """
    C{maxSessions} is an C{int}, 0 or more; before, C{-1} refused every new
    session (a 503 for ever) and C{"10"} failed each with a C{TypeError}.
    """
    with pytest.raises(ValueError, match="maxSessions"):
        MemoryDatabase(Clock(), bad)
