"""
LMDB: a full map, keys that are not UTF-8, and a missing C{lmdb} extra.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, cast

import lmdb
import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList
from twisted.python.failure import Failure

from tests.db.test_conformance import create
from txsessions import DestroyReason
from txsessions.db.lmdb import LMDBDatabase
from txsessions.errors import SessionLimitError
from txsessions.interfaces import Lifetime, SessionChanges

_SMALL_MAP = 8 << 20


async def _fill(db: LMDBDatabase, expiresAt: float | None) -> int:
    """
    Create large sessions, many at a time, until one is refused.

    @return: how many were stored.
    @raise AssertionError: when one fails otherwise than with
        L{SessionLimitError}.
    """
    stored = 0
    while True:
        saves = [
            db.save(
                f"k{stored + i:06d}",
                SessionChanges(
                    create=True,
                    lifetime=Lifetime(0, expiresAt),
                    updated={"v": json.dumps("x" * 1000)},
                ),
            )
            for i in range(32)
        ]
        outcomes = await DeferredList(saves, consumeErrors=True)
        for ok, outcome in outcomes:
            if ok:
                stored += 1
            else:
                failure = cast(Failure, outcome)
                assert failure.check(SessionLimitError), failure
        if not all(ok for ok, _ in outcomes):
            return stored


@pytest_twisted.ensureDeferred
async def test_aNearlyFullMapRefusesNewSessionsAndStillFreesOld(
    tmp_path: Path, clock: Any
) -> None:
    """
    Past nine tenths of its map, LMDB refuses new sessions with
    L{SessionLimitError}, keeping the rest for what removes sessions:
    before, the map filled up, and then no session could be removed (a
    delete needs fresh pages too), so every new session failed for good.
    """
    db = LMDBDatabase(str(tmp_path / "env"), clock=clock, mapSize=_SMALL_MAP)
    try:
        stored = await _fill(db, 10)
        assert stored > 1000
        assert db._lmdb._env.info()["map_size"] == _SMALL_MAP
        assert await db.destroy("k000000", DestroyReason.destroyed) is True
        clock.advance(20)  # every session has expired, and is removed
        assert await db.count() == 0
        assert await db.purgeExpired() == 0
        await create(db, "new", None)
        assert await db.count() == 1
    finally:
        await db.close()


@pytest_twisted.ensureDeferred
async def test_aNearlyFullMapCanBeEmptied(tmp_path: Path, clock: Any) -> None:
    """
    A nearly full map of sessions without a lifetime is emptied whole.
    """
    db = LMDBDatabase(str(tmp_path / "env"), clock=clock, mapSize=_SMALL_MAP)
    try:
        stored = await _fill(db, None)
        assert await db.destroyAll(DestroyReason.destroyed) == stored
    finally:
        await db.close()


def _putForeign(path: str, rawKey: bytes, record: dict[str, Any]) -> None:
    """
    Write a record the way another program would.
    """
    env = lmdb.open(path, max_dbs=2)
    table = env.open_db(b"txsessions")
    with env.begin(write=True, db=table) as txn:
        txn.put(rawKey, json.dumps(record).encode())
    env.close()


@pytest_twisted.ensureDeferred
async def test_aRecordWhoseKeyIsNotUTF8IsRemovedAtStartUp(
    tmp_path: Path, clock: Any
) -> None:
    """
    A record whose key is not UTF-8 is corrupt: removed when the
    environment opens.  It had made opening fail with a bare
    C{UnicodeDecodeError}.
    """
    path = str(tmp_path / "env")
    db = LMDBDatabase(path, clock=clock)
    await create(db, "ok", None, a="1")
    await db.close()
    _putForeign(path, b"\xff\xfe", {"c": 0, "e": 10, "f": {}})
    db = LMDBDatabase(path, clock=clock)
    try:
        assert await db.count() == 1
        assert [info.key for info in await db.sessions()] == ["ok"]
    finally:
        await db.close()
    env = lmdb.open(path, max_dbs=2)
    with env.begin(db=env.open_db(b"txsessions")) as txn:
        assert txn.get(b"\xff\xfe") is None
    env.close()


@pytest_twisted.ensureDeferred
async def test_aKeyThatIsNotUTF8IsSkippedOnceOpen(tmp_path: Path, clock: Any) -> None:
    """
    Such a record written once the environment is open (by another
    process) is left out of listings, purges and L{destroyAll}'s report.
    """
    db = LMDBDatabase(str(tmp_path / "env"), clock=clock)
    try:
        await create(db, "ok", 10, a="1")
        backend = db._lmdb
        with backend._env.begin(write=True, db=backend._db) as txn:
            txn.put(b"\xff", json.dumps({"c": 0, "e": 10, "f": {}}).encode())
            txn.put(b"\xfe", json.dumps({"c": 0, "e": None, "f": {}}).encode())
        assert [info.key for info in await db.sessions()] == ["ok"]
        clock.advance(20)
        assert await db.purgeExpired() == 0  # "ok" expired on schedule
        assert await db.destroyAll(DestroyReason.destroyed) == 0
    finally:
        await db.close()


def test_aMissingExtraNamesThePipLine(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Without the C{lmdb} extra, importing the LMDB database says what to
    install: it had raised a bare C{ModuleNotFoundError}.
    """
    monkeypatch.setitem(sys.modules, "lmdb", None)
    monkeypatch.delitem(sys.modules, "txsessions.db.lmdb")
    with pytest.raises(ImportError, match=r"pip install 'txsessions\[lmdb\]'"):
        importlib.import_module("txsessions.db.lmdb")


@pytest_twisted.ensureDeferred
async def test_aMapGrownBySavesToStoredSessionsCanBeEmptied(
    tmp_path: Path, clock: Any
) -> None:
    """
    Saves that grow sessions already stored are refused past the high-water
    mark too, as new sessions are (helper-55: they filled the map to its
    end, and then destroys failed with C{MapFullError}).
    """
    db = LMDBDatabase(str(tmp_path / "env"), clock=clock, mapSize=_SMALL_MAP)
    try:
        stored = await _fill(db, None)  # past high water: new sessions refused
        more = SessionChanges(updated={"more": json.dumps("y" * 2000)})
        refused: list[Failure] = []
        for i in range(stored):
            await db.save(f"k{i:06d}", more).addErrback(refused.append)
        assert refused and all(f.check(SessionLimitError) for f in refused)
        assert await db.destroyAll(DestroyReason.destroyed) == stored
    finally:
        await db.close()
