"""
The embedded databases (SQLite, LMDB) under races with other processes,
deadlines and crashes, and their group commit.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher

from tests.db.test_conformance import create
from txsessions import DatabaseError
from txsessions.db import _threads, openDatabase
from txsessions.db._writer import Batching, Writer
from txsessions.db.lmdb import LMDBDatabase
from txsessions.db.sqlite import SQLiteDatabase
from txsessions.errors import SessionLimitError
from txsessions.interfaces import SessionChanges

EMBEDDED = ["sqlite", "lmdb"]

ROOT = str(Path(__file__).resolve().parents[2])

_DELETER = {
    "sqlite": """
import json, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
fields = json.dumps({"big": json.dumps("x" * 200_000)})
back = 0
for i in range(int(sys.argv[2])):
    c.execute("BEGIN IMMEDIATE")
    back += c.execute("DELETE FROM txsessions WHERE key = 'k'").rowcount
    c.execute(
        "INSERT INTO txsessions (key, created, expires, fields) "
        "VALUES ('k', 0, NULL, ?)",
        (fields,),
    )
    c.execute("COMMIT")
    time.sleep(0.004)
    c.execute("DELETE FROM txsessions WHERE key = 'k'")
    time.sleep(0.008)
time.sleep(0.1)
back += c.execute("DELETE FROM txsessions WHERE key = 'k'").rowcount
print(back)
""",
    "lmdb": """
import json, lmdb, sys, time
env = lmdb.open(sys.argv[1], max_dbs=1, map_size=1 << 30)
db = env.open_db(b"txsessions")
record = json.dumps(
    {"c": 0, "e": None, "f": {"big": json.dumps("x" * 200_000)}}
).encode()
back = 0
for i in range(int(sys.argv[2])):
    with env.begin(write=True, db=db) as txn:
        back += txn.delete(b"k")
        txn.put(b"k", record)
    time.sleep(0.004)
    with env.begin(write=True, db=db) as txn:
        txn.delete(b"k")
    time.sleep(0.008)
time.sleep(0.1)
with env.begin(write=True, db=db) as txn:
    back += txn.delete(b"k")
print(back)
""",
}

_LOCKER = {
    "sqlite": """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
c.execute("ROLLBACK")
""",
    "lmdb": """
import lmdb, sys
env = lmdb.open(sys.argv[1], max_dbs=1, map_size=1 << 30)
db = env.open_db(b"txsessions")
txn = env.begin(write=True, db=db)
print("locked", flush=True)
sys.stdin.read()
txn.abort()
""",
}


def path(kind: str, tmp_path: Path) -> str:
    return str(tmp_path / ("s.db" if kind == "sqlite" else "env"))


def embedded(kind: str, tmp_path: Path, clock: Any, **options: Any) -> Any:
    cls = SQLiteDatabase if kind == "sqlite" else LMDBDatabase
    return cls(path(kind, tmp_path), clock=clock, **options)


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_noSaveResurrectsASessionAnotherProcessDestroyed(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    Another process creates and deletes a large session, again and again,
    while this one saves it: once deleted, a session stays deleted (this
    process never creates it, so the other finds it there before creating
    it again only if a save brought it back).  On SQLite before the fix,
    the save read the row outside its write transaction and wrote it back
    after the other process's DELETE.
    """
    db = embedded(kind, tmp_path, clock)
    await db.count()  # the file exists
    big = json.dumps("y" * 200_000)
    try:
        deleter = deferToThread(
            subprocess.run,
            [sys.executable, "-c", _DELETER[kind], path(kind, tmp_path), "150"],
            check=True,
            capture_output=True,
            text=True,
        )
        while not deleter.called:
            changes = SessionChanges(updated={"big": big}, increments={"n": 1})
            await gatherResults([db.save("k", changes) for _ in range(4)])
        resurrected = int((await deleter).stdout)
        assert resurrected == 0
        assert await db.load("k") is None
    finally:
        await db.close()


async def _lockedByAnotherProcess(kind: str, tmp_path: Path) -> subprocess.Popen[str]:
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER[kind], path(kind, tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None
    assert await deferToThread(locker.stdout.readline) == "locked\n"
    return locker


async def _release(locker: subprocess.Popen[str]) -> None:
    assert locker.stdin is not None
    locker.stdin.close()
    assert await deferToThread(locker.wait) == 0


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aSaveNeverLandsAfterItsDeadline(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    Another process holds the write lock past a save's deadline (what the
    manager answers 503 at): the save fails and, once the lock is released,
    never lands.  (Before the fix, SQLite's save waited out its own 5 s busy
    timeout and LMDB's without end, and both then wrote.)
    """
    db = embedded(kind, tmp_path, clock, timeout=0.5)
    try:
        await create(db, "k", None, n="1")
        locker = await _lockedByAnotherProcess(kind, tmp_path)
        try:
            saved = db.save("k", SessionChanges(increments={"n": 1}))
            # The manager's deadline: the request is answered 503 now.
            await task.deferLater(reactor, 0.5, lambda: None)
        finally:
            await _release(locker)
        with pytest.raises(DatabaseError, match="deadline"):
            await saved
        stored = await db.load("k")
        assert stored is not None and stored.values == {"n": "1"}
        assert await db.save("k", SessionChanges(increments={"n": 1})) == {"n": 2}
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_anSQLiteFileOpensWhileAnotherProcessWrites(
    tmp_path: Path, clock: Any
) -> None:
    """
    Opening an SQLite file needs no write lock when nothing in it is
    corrupt: it had waited out the busy timeout, then failed, while another
    process held a write transaction (helper-40).
    """
    db = embedded("sqlite", tmp_path, clock)
    await create(db, "k", None, n="1")
    await db.close()
    locker = await _lockedByAnotherProcess("sqlite", tmp_path)
    try:
        db = embedded("sqlite", tmp_path, clock)
    finally:
        await _release(locker)
    stored = await db.load("k")
    assert stored is not None and stored.values == {"n": "1"}
    await db.close()


class _ShutdownReactor:
    """
    The global reactor, but for its shutdown triggers, which L{shutdown}
    runs.
    """

    def __init__(self) -> None:
        self._triggers: list[Callable[[], object]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)

    def addSystemEventTrigger(
        self, phase: str, event: str, f: Callable[[], object]
    ) -> int:
        self._triggers.append(f)
        return len(self._triggers) - 1

    def removeSystemEventTrigger(self, trigger: int) -> None:
        pass

    def shutdown(self) -> None:
        for trigger in self._triggers:
            trigger()


@pytest_twisted.ensureDeferred
async def test_shutdownDoesNotWaitForeverForAnotherProcessesLock(
    tmp_path: Path, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The reactor's shutdown waits for the LMDB writer at most
    C{SHUTDOWN_WAIT}, then stops without it, saying so: while another
    process held the write lock it had waited without end, and the server
    did not exit (helper-37).  The save under way still lands once the lock
    is released, and is acknowledged.
    """
    monkeypatch.setattr(_threads, "SHUTDOWN_WAIT", 0.2)
    threads = _ShutdownReactor()
    db = LMDBDatabase(
        path("lmdb", tmp_path), clock=clock, threads=cast(Any, threads), timeout=60
    )
    await create(db, "k", None, n="1")
    locker = await _lockedByAnotherProcess("lmdb", tmp_path)
    events: list[Any] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        saved = db.save("k", SessionChanges(increments={"n": 1}))
        stopping = deferToThread(threads.shutdown)
        await task.deferLater(reactor, 1, lambda: None)
        assert stopping.called
    finally:
        globalLogPublisher.removeObserver(observer)
        await _release(locker)
    warnings = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.warn]
    assert len(warnings) == 1
    assert "the writer still waits for the database after 0.2 s" in warnings[0]
    assert await saved == {"n": 2}


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aSaveWithinItsDeadlineWaitsForTheLock(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    A lock released before the deadline delays a save; it does not fail it.
    """
    db = embedded(kind, tmp_path, clock, timeout=60)
    try:
        await create(db, "k", None, n="1")
        locker = await _lockedByAnotherProcess(kind, tmp_path)
        saved = db.save("k", SessionChanges(increments={"n": 1}))
        await _release(locker)
        assert await saved == {"n": 2}
    finally:
        await db.close()


async def _gate(db: Any) -> tuple[threading.Event, Deferred[None]]:
    """
    Hold the writer thread until the returned event is set, so that what is
    submitted meanwhile makes one batch.
    """
    entered, release = threading.Event(), threading.Event()

    def hold(txn: Any) -> None:
        entered.set()
        release.wait()

    held = db.writer.submit(hold, inline=False)
    assert await deferToThread(entered.wait, 60)
    return release, held


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aBatchKeepsEachChangesOutcome(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    Changes waiting together commit in one transaction; the one refused
    (the database is full) fails alone, and the others land.
    """
    db = embedded(kind, tmp_path, clock, maxSessions=2)
    try:
        await create(db, "a", None, n="1")
        release, held = await _gate(db)
        commits = db.writer.commits
        pending = [
            db.save("b", SessionChanges(create=True, lifetime=_forever())),
            db.save("c", SessionChanges(create=True, lifetime=_forever())),
            db.save("a", SessionChanges(increments={"n": 1})),
            db.destroy("gone", _destroyed()),
        ]
        failed = pending[1]
        outcomes: list[Any] = []

        def refused(failure: Any) -> str:
            outcomes.append(failure.type)
            return "refused"

        failed.addErrback(refused)
        release.set()
        await held
        results = await gatherResults(pending)
        assert results == [{}, "refused", {"n": 2}, False]
        assert outcomes == [SessionLimitError]
        assert db.writer.commits == commits + 2  # the gate's, then the batch
        assert db.writer.changes >= 5
    finally:
        await db.close()
    reopened = embedded(kind, tmp_path, clock)
    try:
        assert sorted(info.key for info in await reopened.sessions()) == ["a", "b"]
        stored = await reopened.load("a")
        assert stored is not None and stored.values == {"n": "2"}
    finally:
        await reopened.close()


def _forever() -> Any:
    from txsessions.interfaces import Lifetime

    return Lifetime(0, None)


def _destroyed() -> Any:
    from txsessions import DestroyReason

    return DestroyReason.destroyed


_CRASHER = """
import os, sys, threading
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from txsessions.interfaces import Lifetime, SessionChanges
from txsessions.db.{module} import {cls}

async def main():
    db = {cls}(sys.argv[1], clock=reactor)
    await db.save("acked", SessionChanges(create=True, lifetime=Lifetime(0, None),
                                          updated={{"n": "1"}}))
    print("acknowledged", flush=True)
    release = threading.Event()
    db.writer.submit(lambda txn: release.wait(), inline=False)
    db.save("acked", SessionChanges(increments={{"n": 1}}))
    db.save("new", SessionChanges(create=True, lifetime=Lifetime(0, None)))
    db.writer.submit(lambda txn: os._exit(9), inline=False)
    db.save("later", SessionChanges(create=True, lifetime=Lifetime(0, None)))
    release.set()

def failed(failure):
    print(failure.getTraceback(), file=sys.stderr, flush=True)
    os._exit(1)

reactor.callWhenRunning(lambda: Deferred.fromCoroutine(main()).addErrback(failed))
reactor.run()
"""


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aCrashInABatchLosesOnlyItsUnacknowledgedChanges(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    A process dies in the middle of writing a batch: what was acknowledged
    before is there, nothing of the batch is, and the database opens.
    """
    module, cls = ("sqlite", "SQLiteDatabase")
    if kind == "lmdb":
        module, cls = ("lmdb", "LMDBDatabase")
    script = _CRASHER.format(module=module, cls=cls)
    crashed = await deferToThread(
        subprocess.run,
        [sys.executable, "-c", script, path(kind, tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert crashed.returncode == 9, crashed.stderr
    assert crashed.stdout == "acknowledged\n"
    db = embedded(kind, tmp_path, clock)
    try:
        stored = await db.load("acked")
        assert stored is not None and stored.values == {"n": "1"}
        assert [info.key for info in await db.sessions()] == ["acked"]
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_countingNeverHoldsBackASave(
    tmp_path: Path, clock: Any, monkeypatch: Any
) -> None:
    """
    LMDB counts in a thread of its own: a save made while a count is under
    way commits without waiting for it.  (Before the fix, the count ran on
    the writer thread, decoding every record, and saves waited: a second
    each with 9,000 sessions.)
    """
    from txsessions.db import lmdb as module

    countGoing, countMayEnd = threading.Event(), threading.Event()
    liveIn = module._liveIn

    def slowCount(*a: Any) -> int:
        countGoing.set()
        countMayEnd.wait(60)
        return liveIn(*a)

    monkeypatch.setattr(module, "_liveIn", slowCount)
    db = embedded("lmdb", tmp_path, clock)
    try:
        await create(db, "k", None, n="1")
        counted = db.count()
        counts: list[int] = []
        counted.addCallback(counts.append)
        assert await deferToThread(countGoing.wait, 60)
        saved = await db.save("k", SessionChanges(increments={"n": 1}))
        stillCounting = counts == []
        countMayEnd.set()
        assert saved == {"n": 2}
        assert stillCounting
        await counted
        assert counts == [1]
    finally:
        countMayEnd.set()
        await db.close()


@pytest.mark.parametrize("cls", [SQLiteDatabase, LMDBDatabase], ids=["sqlite", "lmdb"])
def test_optionsAreKeywordOnly(cls: Callable[..., Any], tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        cls(str(tmp_path / "x"), None, 5)


def test_batchingRefusesNonsense() -> None:
    with pytest.raises(ValueError):
        Batching(maxChanges=0)
    with pytest.raises(ValueError):
        Batching(maxWait=-1)
    with pytest.raises(ValueError):
        Batching(busyWait=-1)


@pytest.mark.parametrize(("kind", "gap"), [("sqlite", 0.005), ("lmdb", 0.005)])
@pytest_twisted.ensureDeferred
async def test_eachDatabaseLeavesItsOwnGapBetweenBusyTransactions(
    kind: str, gap: float, tmp_path: Path, clock: Any
) -> None:
    """
    By default a busy SQLite writer leaves its write lock free up to 5 ms
    between transactions, for other processes polling for it and for
    company; LMDB's waiters block on its lock, and its 5 ms are for company
    only.  A L{Batching} that says
    otherwise wins.
    """
    db = embedded(kind, tmp_path, clock)
    (tmp_path / "told").mkdir()
    told = embedded(kind, tmp_path / "told", clock, batching=Batching(busyWait=0.01))
    try:
        assert db.writer._busyWait == gap
        assert told.writer._busyWait == 0.01
    finally:
        await db.close()
        await told.close()


@pytest_twisted.ensureDeferred
async def test_aClosedWriterRefusesChanges(tmp_path: Path, clock: Any) -> None:
    db = embedded("sqlite", tmp_path, clock)
    writer: Writer = db.writer
    await db.close()
    with pytest.raises(DatabaseError, match="closed"):
        await writer.submit(lambda txn: None)


@pytest_twisted.ensureDeferred
async def test_openDatabasePassesTheDeadline(tmp_path: Path, clock: Any) -> None:
    db: Any = openDatabase(f"sqlite:{tmp_path / 's.db'}", clock, deadline=2.5)
    try:
        assert db.writer._timeout == 2.5
    finally:
        await db.close()


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
@pytest_twisted.ensureDeferred
async def test_theManagerGivesAHandBuiltDatabaseItsDeadline(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    A database built by hand, without C{timeout=}, gets the manager's
    C{databaseTimeout} (and a later C{useDatabase} gets it too): a request
    answered 503 never has its change land later.
    """
    from txsessions import Config, Sessions

    path = str(tmp_path / kind)
    db: Any = (
        SQLiteDatabase(path, clock=clock)
        if kind == "sqlite"
        else LMDBDatabase(path, clock=clock)
    )
    other: Any = SQLiteDatabase(str(tmp_path / "other"), clock=clock)
    try:
        assert db.writer._timeout is None
        sessions = Sessions(Config(databaseTimeout=2.5), db, clock)
        assert db.writer._timeout == 2.5
        sessions.useDatabase(other)
        assert other.writer._timeout == 2.5
    finally:
        await db.close()
        await other.close()


@pytest_twisted.ensureDeferred
async def test_sqliteRunsABatchInTheReactorThreadEachChangeKeepingItsOutcome(
    tmp_path: Path, clock: Any
) -> None:
    """
    SQLite runs the changes of a batch in the reactor thread (only the
    commit goes to the writer thread); one that fails there is undone alone
    and the others commit, in one transaction.  (Before, every change ran in
    the writer thread.)
    """
    db = embedded("sqlite", tmp_path, clock)
    ran: list[str] = []

    def where(result: Any) -> Callable[[Any], Any]:
        def work(txn: Any) -> Any:
            ran.append(threading.current_thread().name)
            return result

        return work

    def broken(txn: Any) -> None:
        txn.execute("DELETE FROM txsessions WHERE key = 'a'")
        raise ValueError("refused")

    try:
        await create(db, "a", None, n="1")
        release, held = await _gate(db)
        commits = db.writer.commits
        pending = [
            db.save("b", SessionChanges(create=True, lifetime=_forever())),
            db.writer.submit(where("here")),
            db.writer.submit(broken),
            db.save("a", SessionChanges(increments={"n": 1})),
        ]
        outcomes: list[Any] = []
        pending[2].addErrback(lambda failure: outcomes.append(failure.value))
        release.set()
        await held
        results = await gatherResults(pending)
        assert results == [{}, "here", None, {"n": 2}]
        assert [str(e) for e in outcomes] == ["refused"]
        assert ran == [threading.main_thread().name]
        assert db.writer.commits == commits + 2  # the gate's, then the batch
    finally:
        await db.close()
    reopened = embedded("sqlite", tmp_path, clock)
    try:
        stored = await reopened.load("a")
        assert stored is not None and stored.values == {"n": "2"}
        assert await reopened.load("b") is not None
    finally:
        await reopened.close()


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_changesThatReadEverySessionRunInTheWriterThread(
    kind: str, tmp_path: Path, clock: Any, monkeypatch: Any
) -> None:
    """
    A purge, a destroyAll and a create under a cap (which counts the live
    sessions) may take long: never in the reactor thread.
    """
    db = embedded(kind, tmp_path, clock, maxSessions=10)
    submitted = db.writer.submit
    ran: list[bool] = []

    def spy(work: Any, size: int = 0, *, inline: bool = True) -> Any:
        def recorded(txn: Any) -> Any:
            ran.append(threading.current_thread() is threading.main_thread())
            return work(txn)

        return submitted(recorded, size, inline=inline)

    monkeypatch.setattr(db.writer, "submit", spy)
    try:
        await create(db, "a", 5)
        await db.purgeExpired()
        await db.destroyAll(_destroyed())
        assert ran == [False, False, False]
        assert await db.writer.submit(lambda txn: None) is None
        assert ran[-1] is (kind == "sqlite")
    finally:
        await db.close()


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_closeCommitsWhatWaitsForTheBatchUnderWay(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    Changes submitted while a batch is being committed, then close: they
    are committed before the writer stops.
    """
    db = embedded(kind, tmp_path, clock)
    saves = [
        db.save(f"k{i}", SessionChanges(create=True, lifetime=_forever()))
        for i in range(5)
    ]
    await db.close()
    assert await gatherResults(saves) == [{}] * 5
    reopened = embedded(kind, tmp_path, clock)
    try:
        assert sorted(i.key for i in await reopened.sessions()) == [
            f"k{i}" for i in range(5)
        ]
    finally:
        await reopened.close()


@pytest_twisted.ensureDeferred
async def test_aBusySQLiteWriterLeavesTheLockFreeBeforeItsNextBatch(
    tmp_path: Path, clock: Any
) -> None:
    """
    Once a batch of several changes is committed, SQLite begins the next
    only after C{busyWait}: meanwhile another process finds the write lock
    free, and what arrives joins that batch.  (Before the fix, the next
    batch began in the reactor thread as soon as the last was delivered,
    and another process polling for the lock waited about 0.9 s for each
    transaction.)
    """
    db = embedded("sqlite", tmp_path, clock, batching=Batching(busyWait=0.5))
    seen: list[tuple[bool, list[str]]] = []
    ran: list[str] = []
    probed: Deferred[None] = Deferred()

    def third(txn: Any) -> None:
        ran.append("third")

    def probe() -> None:
        other = sqlite3.connect(path("sqlite", tmp_path), timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            seen.append((True, list(ran)))
        except sqlite3.OperationalError:
            seen.append((False, list(ran)))
        finally:
            other.close()
        probed.callback(None)

    def delivered(result: Any) -> Any:
        later = db.writer.submit(third)
        reactor.callLater(0, probe)
        return later

    try:
        await create(db, "a", None, n="1")
        release, held = await _gate(db)
        first = db.save("a", SessionChanges(increments={"n": 1}))
        second = db.save("a", SessionChanges(increments={"n": 1}))
        release.set()
        await held
        await first
        await second.addCallback(delivered)
        await probed
        assert seen == [(True, [])]
        assert ran == ["third"]
    finally:
        await db.close()


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_anIdleDatabaseWaitsMaxWaitForCompany(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    With C{maxWait}, a change arriving at an idle database waits that long
    for others to join its transaction.  (Before the fix, SQLite, which runs
    a batch in the reactor thread, began one at once, and the second change
    took a transaction of its own.)
    """
    db = embedded(kind, tmp_path, clock, batching=Batching(maxWait=1.0))
    try:
        commits, changes = db.writer.commits, db.writer.changes
        first = db.writer.submit(lambda txn: "first")
        second: Deferred[str] = Deferred()

        def later() -> None:
            db.writer.submit(lambda txn: "second").chainDeferred(second)

        reactor.callLater(0, later)
        assert await gatherResults([first, second]) == ["first", "second"]
        assert (db.writer.commits, db.writer.changes) == (commits + 1, changes + 2)
    finally:
        await db.close()


class _GapClock:
    """
    The reactor's threads with a clock of the test's own for the writer's
    gaps, which pass only when the test says so.
    """

    def __init__(self) -> None:
        self.clock = task.Clock()

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        cast(Any, reactor).callFromThread(f, *args)

    def callLater(self, delay: float, f: Callable[..., Any], *args: Any) -> Any:
        return self.clock.callLater(delay, f, *args)

    def seconds(self) -> float:
        return self.clock.seconds()

    def addSystemEventTrigger(self, *args: Any) -> Any:
        return reactor.addSystemEventTrigger(*args)

    def removeSystemEventTrigger(self, trigger: Any) -> None:
        reactor.removeSystemEventTrigger(trigger)

    def timers(self) -> list[bool]:
        """
        @return: whether each timer on the test's clock is still to run: a
            gap under way is C{[True]}.
        """
        return [c.active() for c in self.clock.getDelayedCalls()]


@contextlib.asynccontextmanager
async def _gapped(
    kind: str,
    tmp_path: Path,
    clock: Any,
    threads: _GapClock | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Any, _GapClock]]:
    """
    An embedded database whose writer's gaps run on the test's clock
    (C{threads}, or a new L{_GapClock}), closed once every gap has passed.
    """
    threads = threads or _GapClock()
    db = embedded(kind, tmp_path, clock, threads=threads, **options)
    try:
        yield db, threads
    finally:
        threads.clock.advance(60)
        await db.close()


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_theGapAfterABusyBatchEndsOnceItsCallersAreBack(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    The gap after a batch of two ends once two changes wait, not after
    C{busyWait}: both join the next transaction at once.  One alone waits.
    (Before the fix, the next batch began only when the gap had passed: the
    callers of a busy batch waited for it even once all were back.)
    """
    async with _gapped(kind, tmp_path, clock) as (db, threads):
        release, held = await _gate(db)
        first = db.writer.submit(lambda txn: "first")
        second = db.writer.submit(lambda txn: "second")
        release.set()
        await held
        assert await gatherResults([first, second]) == ["first", "second"]
        await task.deferLater(reactor, 0, lambda: None)
        commits = db.writer.commits
        # The batch of two is delivered: its gap is on the test's clock.
        assert threads.timers() == [True]
        third = db.writer.submit(lambda txn: "third")
        assert threads.clock.getDelayedCalls()[0].active()
        fourth = db.writer.submit(lambda txn: "fourth")
        assert threads.timers() == []
        assert await gatherResults([third, fourth]) == ["third", "fourth"]
        assert db.writer.commits == commits + 1


async def _busy(db: Any, threads: _GapClock, n: int) -> None:
    """
    Commit a batch of C{n} changes and deliver it: its gap starts.
    """
    release, held = await _gate(db)
    batch = [db.writer.submit(lambda txn, i=i: i) for i in range(n)]
    release.set()
    await held
    assert await _delivered(gatherResults(batch)) == list(range(n))
    assert threads.timers() == [True]


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aChangeWithNobodyBehindItWaitsOnlyAQuietGap(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    After a busy batch, a change that no other follows starts its batch
    once L{Writer.quiet} has passed since it arrived, not after the whole
    C{busyWait}.  (Before the fix, a lone change after a batch of two
    waited the whole 5 ms: LMDB's median latency in a "two pairs, then one
    alone" load went from 0.04 to 5.25 ms.)
    """
    async with _gapped(kind, tmp_path, clock) as (db, threads):
        quiet = db.writer.quiet
        assert quiet * 4 < db.writer._busyWait
        await _busy(db, threads, 2)
        commits = db.writer.commits
        threads.clock.advance(quiet / 2)
        alone = db.writer.submit(lambda txn: "alone")
        threads.clock.advance(quiet * 0.9)
        assert not alone.called
        assert threads.timers() == [True]
        threads.clock.advance(quiet * 0.2)
        assert threads.timers() == []
        assert await alone == "alone"
        assert db.writer.commits == commits + 1


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aQuietGapEndsEvenWhereTheClocksFloatsRound(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    A gap starting at 0.01 s on the clock, where 0.01 + quiet - 0.01 comes
    out a hair under quiet, still ends at quiet.  (Before the fix, the check
    re-armed itself 8.7e-19 s later, at the same time on the clock, and
    C{Clock.advance} never returned.)
    """
    gapClock = _GapClock()
    gapClock.clock.advance(0.01)
    async with _gapped(kind, tmp_path, clock, gapClock) as (db, threads):
        await _busy(db, threads, 2)
        alone = db.writer.submit(lambda txn: "alone")
        calls = 0
        original = threads.clock.callLater

        def counted(delay: float, f: Callable[..., Any], *args: Any) -> Any:
            nonlocal calls
            calls += 1
            assert calls < 100, f"re-armed {calls} times (delay {delay})"
            return original(delay, f, *args)

        threads.callLater = counted  # type: ignore[method-assign]
        threads.clock.advance(db.writer.quiet)
        assert await alone == "alone"


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aGapTheUserAskedForIsNotCutShortByQuiet(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    With C{maxWait}, a change alone after a busy batch waits the whole
    time the user asked for, however quiet it stays.
    """
    async with _gapped(kind, tmp_path, clock, batching=Batching(maxWait=1)) as (
        db,
        threads,
    ):
        quiet = db.writer.quiet
        first = db.writer.submit(lambda txn: "first")
        second = db.writer.submit(lambda txn: "second")
        threads.clock.advance(1)
        assert await _delivered(gatherResults([first, second])) == ["first", "second"]
        alone = db.writer.submit(lambda txn: "alone")
        threads.clock.advance(quiet * 3)
        assert not alone.called
        assert threads.timers() == [True]
        threads.clock.advance(1)
        assert await alone == "alone"


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aGapWithNothingWaitingOrChangesStillArrivingGoesOn(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    A gap is not quiet while nothing waits (a batch begun then would hold
    none of the callers coming back), nor while changes keep arriving
    less than L{Writer.quiet} apart: after a batch of four, changes
    arriving every 0.9 of it join one transaction, the gap ending when
    the fourth arrives.
    """
    async with _gapped(kind, tmp_path, clock) as (db, threads):
        quiet = db.writer.quiet
        await _busy(db, threads, 4)
        commits = db.writer.commits
        threads.clock.advance(quiet * 2)
        assert threads.timers() == [True]
        changes = []
        for i in range(3):
            changes.append(db.writer.submit(lambda txn, i=i: i))
            threads.clock.advance(quiet * 0.9)
            assert threads.timers() == [True]
        changes.append(db.writer.submit(lambda txn: 3))
        assert threads.timers() == []
        assert await gatherResults(changes) == [0, 1, 2, 3]
        assert db.writer.commits == commits + 1


@pytest.mark.parametrize("raises", [True, False])
@pytest_twisted.ensureDeferred
async def test_aChangeThatUndoesTheWholeSQLiteTransactionFailsItsBatch(
    tmp_path: Path, clock: Any, raises: bool
) -> None:
    """
    When SQLite rolls a whole transaction back on a change's failure (as it
    may on a full disk), every change of the batch is told it failed, and
    none of them lands: each change's outcome matches the file.  So too
    when the change caught the error and returned.  (Before the fix, the
    change after it ran outside any transaction and committed on its own,
    yet was told it failed; for a change that returned, until the check
    after each change.)
    """
    db = embedded("sqlite", tmp_path, clock)

    def insert(key: str) -> Callable[[Any], None]:
        def work(txn: Any) -> None:
            txn.execute(
                "INSERT INTO txsessions (key, created, expires, fields) "
                "VALUES (?, 0, NULL, '{}')",
                (key,),
            )

        return work

    def undoEverything(txn: Any) -> None:
        txn.execute("ROLLBACK")
        if raises:
            raise sqlite3.OperationalError("database or disk is full")

    try:
        release, held = await _gate(db)
        changes = [
            db.writer.submit(insert("a")),
            db.writer.submit(undoEverything),
            db.writer.submit(insert("c")),
        ]
        release.set()
        await held
        outcomes = []
        for change in changes:
            try:
                await change
            except DatabaseError:
                outcomes.append("failed")
            else:
                outcomes.append("made")
        other = sqlite3.connect(path("sqlite", tmp_path))
        try:
            stored = {key for (key,) in other.execute("SELECT key FROM txsessions")}
        finally:
            other.close()
        assert stored == set()
        assert outcomes == ["failed", "failed", "failed"]
    finally:
        await db.close()


async def _delivered(d: Deferred[Any]) -> Any:
    """
    Wait for C{d}, a change's outcome, and for the rest of its delivery:
    the writer leaves its gap after the outcomes are given.
    """
    result = await d
    await task.deferLater(reactor, 0, lambda: None)
    return result


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_aGapTheUserAskedForIsWaitedWhole(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    With C{maxWait}, the gap after a busy batch is not cut short when as
    many changes wait as that batch held: the user asked for company.
    """
    async with _gapped(kind, tmp_path, clock, batching=Batching(maxWait=1)) as (
        db,
        threads,
    ):
        first = db.writer.submit(lambda txn: "first")
        second = db.writer.submit(lambda txn: "second")
        threads.clock.advance(1)
        assert await _delivered(gatherResults([first, second])) == ["first", "second"]
        commits = db.writer.commits
        third = db.writer.submit(lambda txn: "third")
        fourth = db.writer.submit(lambda txn: "fourth")
        fifth = db.writer.submit(lambda txn: "fifth")
        assert threads.timers() == [True]
        assert not third.called
        threads.clock.advance(1)
        assert await gatherResults([third, fourth, fifth]) == [
            "third",
            "fourth",
            "fifth",
        ]
        assert db.writer.commits == commits + 1


@pytest.mark.parametrize("kind", EMBEDDED)
@pytest_twisted.ensureDeferred
async def test_theCompanyAGapWaitsForIsForgottenSlowly(
    kind: str, tmp_path: Path, clock: Any
) -> None:
    """
    After a batch of four, then one of two (cut short by the gap's end),
    the next gap ends once three changes wait, not two: the largest recent
    batch is forgotten one change a batch, as its callers leave.
    """
    async with _gapped(kind, tmp_path, clock) as (db, threads):
        release, held = await _gate(db)
        four = [db.writer.submit(lambda txn, i=i: i) for i in range(4)]
        release.set()
        await held
        assert await _delivered(gatherResults(four)) == [0, 1, 2, 3]
        two = [db.writer.submit(lambda txn, i=i: i) for i in range(2)]
        assert threads.timers() == [True]
        threads.clock.advance(1)
        assert await _delivered(gatherResults(two)) == [0, 1]
        commits = db.writer.commits
        three = [db.writer.submit(lambda txn, i=i: i) for i in range(2)]
        assert threads.timers() == [True]
        three.append(db.writer.submit(lambda txn: 2))
        assert threads.timers() == []
        assert await gatherResults(three) == [0, 1, 2]
        assert db.writer.commits == commits + 1
