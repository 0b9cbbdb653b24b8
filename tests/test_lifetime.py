from __future__ import annotations

from typing import Any

import pytest

from txsessions import lifetime
from txsessions.lifetime import ExpirationScheduler


def scheduler(clock: Any) -> tuple[ExpirationScheduler, list[tuple[float, str]]]:
    expired: list[tuple[float, str]] = []
    return ExpirationScheduler(
        clock, lambda k: expired.append((clock.seconds(), k))
    ), expired


def test_expiresAtTheGivenSecond(clock: Any) -> None:
    s, expired = scheduler(clock)
    s.add("a", 10)
    clock.advance(9.9)
    assert expired == []
    clock.advance(0.1)
    assert expired == [(10, "a")]
    assert clock.getDelayedCalls() == []


def test_oneCallPerSecondOfExpiry(clock: Any) -> None:
    s, expired = scheduler(clock)
    for i in range(100):
        s.add(f"k{i}", 5.1 + i / 1000)
    s.add("later", 6.5)
    assert len(clock.getDelayedCalls()) == 2
    clock.advance(6)
    assert len(expired) == 100
    assert {t for t, _ in expired} == {6}
    clock.advance(1)
    assert expired[-1] == (7, "later")


def test_fractionalTimesRunNoMoreThanASecondLate(clock: Any) -> None:
    s, expired = scheduler(clock)
    s.add("a", 3.2)
    clock.advance(3.2)
    assert expired == []
    clock.advance(0.8)
    assert expired == [(4, "a")]


def test_removeCancelsAnEmptySecond(clock: Any) -> None:
    s, expired = scheduler(clock)
    s.add("a", 10)
    s.add("b", 10)
    s.remove("a", 10)
    assert len(clock.getDelayedCalls()) == 1
    s.remove("b", 10)
    assert clock.getDelayedCalls() == []
    s.remove("c", 10)
    clock.advance(20)
    assert expired == []


def test_pastTimesExpireOnTheNextTurn(clock: Any) -> None:
    clock.advance(100)
    s, expired = scheduler(clock)
    s.add("a", 50)
    clock.advance(0)
    assert expired == [(100, "a")]


def turn(clock: Any, now: float) -> None:
    """
    One reactor turn at C{now}: run the calls due when it began, as
    C{runUntilCurrent} does (C{Clock.advance} would also run the calls they
    schedule).
    """
    clock.rightNow = now
    due = [c for c in clock.getDelayedCalls() if c.getTime() <= now]
    for call in due:
        clock.calls.remove(call)
        call.called = 1
        call.func(*call.args, **call.kw)


def test_largeBucketsExpireInSlices(
    clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifetime, "SLICE", 10)
    s, expired = scheduler(clock)
    for i in range(25):
        s.add(f"k{i}", 1)
    turn(clock, 1)
    assert len(expired) == 10
    assert len(clock.getDelayedCalls()) == 1
    turn(clock, 1)
    assert len(expired) == 20
    turn(clock, 1)
    assert len(expired) == 25
    assert clock.getDelayedCalls() == []


def test_aFailingExpirationDoesNotStopTheOthers(clock: Any) -> None:
    from twisted.logger import globalLogPublisher

    events: list[Any] = []
    observer: Any = events.append
    globalLogPublisher.addObserver(observer)
    expired: list[str] = []

    def expire(key: str) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        expired.append(key)

    try:
        s = ExpirationScheduler(clock, expire)
        for key in ("a", "bad", "b"):
            s.add(key, 1)
        clock.advance(1)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert sorted(expired) == ["a", "b"]
    assert any("log_failure" in e for e in events)


def test_closeCancelsEverything(clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifetime, "SLICE", 1)
    s, expired = scheduler(clock)
    s.add("a", 1)
    s.add("b", 1)
    s.add("c", 2)
    turn(clock, 1)
    assert len(expired) == 1
    s.close()
    assert clock.getDelayedCalls() == []
    clock.advance(10)
    assert len(expired) == 1


def test_nothingIsScheduledAfterClose(clock: Any) -> None:
    s, expired = scheduler(clock)
    s.close()
    s.add("late", 5)
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    "at",
    [float("inf"), float("-inf"), float("nan"), "soon", 10**400],
    ids=["infinite", "-infinite", "NaN", "text", "huge int"],
)
def test_aCorruptTimeIsNeverScheduled(clock: Any, at: Any) -> None:
    """
    A time that is no finite number (read from a corrupt database row) is
    neither scheduled nor an error to remove: before the fix, C{math.ceil}
    raised, failing a destroy that had already been committed (helper-37).
    """
    expirations, expired = scheduler(clock)
    expirations.add("k", at)
    expirations.remove("k", at)
    assert clock.getDelayedCalls() == []
    assert expired == []
