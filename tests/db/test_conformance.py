"""
The conformance suite: every database passes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from tests.support import resultOf
from txsessions import (
    DestroyReason,
    IDatabase,
    Lifetime,
    MemoryDatabase,
    SessionChanges,
    StoredSession,
)


@pytest.fixture(params=["memory"])
def database(request: Any, clock: Any) -> Iterator[Any]:
    db = MemoryDatabase(clock)
    yield db
    resultOf(db.close())


@pytest.fixture
def destroyed(database: Any) -> list[tuple[str, DestroyReason]]:
    events: list[tuple[str, DestroyReason]] = []
    database.listen(lambda key, reason: events.append((key, reason)))
    return events


def create(db: Any, key: str, expiresAt: float | None = None, **values: str) -> None:
    changes = SessionChanges(
        create=True, lifetime=Lifetime(0, expiresAt), updated=values
    )
    assert resultOf(db.save(key, changes)) == {}


def load(db: IDatabase, key: str) -> StoredSession | None:
    return resultOf(db.load(key))


def test_providesIDatabase(database: Any) -> None:
    assert verifyObject(IDatabase, database)


def test_unknownKeyLoadsAsNone(database: Any) -> None:
    assert load(database, "nope") is None


def test_createThenLoad(database: Any) -> None:
    create(database, "k", None, a="1", b='"two"')
    stored = load(database, "k")
    assert stored == StoredSession(Lifetime(0, None), {"a": "1", "b": '"two"'})


def test_loadReturnsACopy(database: Any) -> None:
    create(database, "k", None, a="1")
    stored = load(database, "k")
    assert stored is not None
    stored.values["a"] = "2"  # type: ignore[index]
    assert load(database, "k") == StoredSession(Lifetime(0, None), {"a": "1"})


def test_saveAppliesClearThenDeletesThenUpdates(database: Any) -> None:
    create(database, "k", None, a="1", b="2", c="3")
    changes = SessionChanges(deleted=frozenset({"a"}), updated={"d": "4", "b": "5"})
    assert resultOf(database.save("k", changes)) == {}
    assert load(database, "k") == StoredSession(
        Lifetime(0, None), {"b": "5", "c": "3", "d": "4"}
    )
    changes = SessionChanges(clear=True, updated={"e": "6"})
    assert resultOf(database.save("k", changes)) == {}
    assert load(database, "k") == StoredSession(Lifetime(0, None), {"e": "6"})


def test_saveNeverResurrects(database: Any, destroyed: list[Any]) -> None:
    create(database, "k", None, a="1")
    assert resultOf(database.destroy("k", DestroyReason.destroyed)) is True
    changes = SessionChanges(updated={"a": "2"}, increments={"n": 1})
    assert resultOf(database.save("k", changes)) is None
    assert load(database, "k") is None
    assert resultOf(database.count()) == 0


def test_saveCanChangeTheLifetime(database: Any, clock: Any) -> None:
    create(database, "k", 10, a="1")
    changes = SessionChanges(lifetime=Lifetime(0, 20))
    assert resultOf(database.save("k", changes)) == {}
    clock.advance(15)
    stored = load(database, "k")
    assert stored is not None and stored.lifetime == Lifetime(0, 20)


def test_expiredSessionIsNeverLoaded(
    database: Any, clock: Any, destroyed: list[Any]
) -> None:
    create(database, "k", 10.5, a="1")
    clock.advance(10.4)
    assert load(database, "k") is not None
    clock.advance(0.1)
    assert load(database, "k") is None
    assert resultOf(database.save("k", SessionChanges(updated={"a": "2"}))) is None
    clock.advance(1)
    assert destroyed == [("k", DestroyReason.expired)]
    assert resultOf(database.count()) == 0
    assert clock.getDelayedCalls() == []


def test_incrementsAreAppliedLast(database: Any) -> None:
    create(database, "k", None, n="5", s='"7"', f="1.5", b="true")
    changes = SessionChanges(
        updated={"n": "10"},
        increments={"n": 2, "missing": -3, "s": 1, "f": 1, "b": 1},
    )
    result = resultOf(database.save("k", changes))
    assert result == {"n": 12, "missing": -3, "s": 1, "f": 1, "b": 1}
    stored = load(database, "k")
    assert stored is not None
    assert stored.values == {"n": "12", "missing": "-3", "s": "1", "f": "1", "b": "1"}


def test_incrementOnCreate(database: Any) -> None:
    changes = SessionChanges(
        create=True, lifetime=Lifetime(0, None), increments={"n": 1}
    )
    assert resultOf(database.save("k", changes)) == {"n": 1}


def test_incrementsNeverLoseAnUpdate(database: Any) -> None:
    create(database, "k", None)
    pending = [
        database.save("k", SessionChanges(increments={"n": 1})) for _ in range(100)
    ]
    results = sorted(resultOf(d)["n"] for d in pending)
    assert results == list(range(1, 101))
    stored = load(database, "k")
    assert stored is not None and stored.values["n"] == "100"


def test_destroyTellsListenersOnce(database: Any, destroyed: list[Any]) -> None:
    create(database, "k", 10)
    assert resultOf(database.destroy("k", DestroyReason.destroyed)) is True
    assert resultOf(database.destroy("k", DestroyReason.destroyed)) is False
    assert destroyed == [("k", DestroyReason.destroyed)]


def test_destroyedSessionDoesNotExpireLater(
    database: Any, clock: Any, destroyed: list[Any]
) -> None:
    create(database, "k", 10)
    resultOf(database.destroy("k", DestroyReason.destroyByID))
    clock.advance(20)
    assert destroyed == [("k", DestroyReason.destroyByID)]
    assert clock.getDelayedCalls() == []


def test_destroyAllAndCount(database: Any, destroyed: list[Any]) -> None:
    for i in range(5):
        create(database, f"k{i}", 10)
    assert resultOf(database.count()) == 5
    assert resultOf(database.destroyAll(DestroyReason.destroyAll)) == 5
    assert resultOf(database.count()) == 0
    assert sorted(destroyed) == [(f"k{i}", DestroyReason.destroyAll) for i in range(5)]


def test_listenReturnsAnUnsubscriber(database: Any) -> None:
    events: list[Any] = []
    stop = database.listen(lambda *a: events.append(a))
    create(database, "a")
    resultOf(database.destroy("a", DestroyReason.destroyed))
    stop()
    stop()
    create(database, "b")
    resultOf(database.destroy("b", DestroyReason.destroyed))
    assert events == [("a", DestroyReason.destroyed)]


def test_aFailingListenerDoesNotStopTheOthers(database: Any) -> None:
    events: list[Any] = []

    def bad(key: str, reason: DestroyReason) -> None:
        raise RuntimeError("listener bug")

    database.listen(bad)
    database.listen(lambda *a: events.append(a))
    create(database, "a")
    assert resultOf(database.destroy("a", DestroyReason.destroyed)) is True
    assert events == [("a", DestroyReason.destroyed)]


def test_closeStopsExpirations(database: Any, clock: Any) -> None:
    create(database, "k", 10)
    resultOf(database.close())
    assert clock.getDelayedCalls() == []
