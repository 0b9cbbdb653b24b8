"""
Counts and listings of the embedded databases never need the write lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.python.failure import Failure

from tests.db.test_conformance import create
from tests.db.test_races import EMBEDDED, _lockedByAnotherProcess, _release, embedded
from txsessions.errors import DatabaseError
from txsessions.interfaces import Lifetime, SessionChanges
from txsessions.records import OWNER_FIELD, OwnerMark


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_readsDoNotWaitForAnotherProcessesWriteLock(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    While another process holds the write lock, and nothing of this
    process's is under way, a count and the listings answer at once: they
    had each submitted an empty change first, which on SQLite failed at its
    deadline and on LMDB waited for the lock without end.
    """
    db = embedded(kind, tmp_path, clock, timeout=0.5)
    try:
        await create(db, "k", None, **{OWNER_FIELD: OwnerMark("alice").encode()})
        locker = await _lockedByAnotherProcess(kind, tmp_path)
        try:
            assert db.writer.flush().called
            # Bounded only so that a regression fails instead of hanging.
            counted = await db.count().addTimeout(30, reactor)
            listed = await db.sessions().addTimeout(30, reactor)
            owned = await db.sessionsOf("alice").addTimeout(30, reactor)
        finally:
            await _release(locker)
        assert counted == 1
        assert [info.key for info in listed] == ["k"]
        assert [info.key for info in owned] == ["k"]
    finally:
        await db.close()


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aFlushWaitsForWhatWasSubmittedAndSubmitsNothing(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    A flush fires once the changes submitted before it are delivered (a
    count sees them), without a change of its own.
    """
    db = embedded(kind, tmp_path, clock)
    try:
        created = db.save("k", SessionChanges(create=True, lifetime=Lifetime(0, None)))
        flushed = db.writer.flush()
        assert not flushed.called
        await flushed
        assert created.called
        await created
        changes = db.writer.changes
        assert await db.count() == 1
        assert db.writer.changes == changes
    finally:
        await db.close()


@pytest.mark.parametrize("what", ["count", "sessions", "sessionsOf"])
@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aReadAfterCloseFailsAtOnce(
    kind: str, what: str, tmp_path: Path, clock: Any
) -> None:
    """
    A count or a listing after the database closed fails with
    L{DatabaseError} at once (helper-55: once flush stopped submitting a
    change of its own, it went to the stopped reading thread, and never
    answered).
    """
    db = embedded(kind, tmp_path, clock)
    await create(db, "k", None)
    await db.close()
    args = ("alice",) if what == "sessionsOf" else ()
    outcome: list[Any] = []
    getattr(db, what)(*args).addBoth(outcome.append)
    assert outcome, f"{what}() after close() never fired"
    assert isinstance(outcome[0], Failure) and outcome[0].check(DatabaseError)
