"""
Closing an embedded database while another process holds its write lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import lmdb
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher

from tests.db.test_conformance import create
from tests.db.test_races import _GapClock, _lockedByAnotherProcess, _release, path
from txsessions.db import _threads
from txsessions.db.lmdb import LMDBDatabase
from txsessions.interfaces import SessionChanges


@pytest_twisted.ensureDeferred
async def test_closeWaitsForTheWriterAtMostShutdownWait(
    tmp_path: Path, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    L{LMDBDatabase.close} (twistd's stopService, in the reactor's "before
    shutdown" phase) waits for a writer stuck on another process's write
    lock at most C{SHUTDOWN_WAIT}, then fires, saying so: it had waited
    without end, and the server never exited.  The save under way still
    lands once the lock is released, and the environment is closed then.
    """
    monkeypatch.setattr(_threads, "SHUTDOWN_WAIT", 5.0)
    threads = _GapClock()
    db = LMDBDatabase(
        path("lmdb", tmp_path), clock=clock, threads=cast(Any, threads), timeout=60
    )
    await create(db, "k", None, n="1")
    events: list[Any] = []
    observer = cast(ILogObserver, events.append)
    locker = await _lockedByAnotherProcess("lmdb", tmp_path)
    globalLogPublisher.addObserver(observer)
    try:
        saved = db.save("k", SessionChanges(increments={"n": 1}))
        closing: Deferred[None] = db.close()
        threads.clock.advance(4.9)
        stillWaiting = not closing.called
        threads.clock.advance(0.1)
        assert stillWaiting
        assert closing.called
    finally:
        globalLogPublisher.removeObserver(observer)
        await _release(locker)
    warnings = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.warn]
    assert len(warnings) == 1
    assert "the writer still waits for the database after 5.0 s" in warnings[0]
    assert await saved == {"n": 2}
    # The writer stops once its batch is delivered; the environment is
    # released then.
    await db.writer.close()
    with pytest.raises(lmdb.Error):
        db._lmdb._env.info()


@pytest_twisted.ensureDeferred
async def test_closeWithAnIdleWriterReleasesAtOnce(tmp_path: Path, clock: Any) -> None:
    """
    A writer that stops in time closes the database, and leaves no timer.
    """
    threads = _GapClock()
    db = LMDBDatabase(path("lmdb", tmp_path), clock=clock, threads=cast(Any, threads))
    await create(db, "k", None, n="1")
    await db.close()
    assert threads.clock.getDelayedCalls() == []
    with pytest.raises(lmdb.Error):
        db._lmdb._env.info()
