"""
The request path's database calls (txsessions._calls): each call's
deadline, kept on a Clock, its latency, and its failures.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from txsessions._calls import DatabaseCalls, isDeferred, loadInParts, saveInParts
from txsessions.errors import DatabaseError
from txsessions.metrics import Metrics


class _Subclass(Deferred[Any]):
    pass


def test_isDeferredIsIsinstance() -> None:
    values: list[object] = [Deferred(), succeed(1), _Subclass(), None, {}, 1, Deferred]
    for value in values:
        assert isDeferred(value) is isinstance(value, Deferred)


class _InParts:
    def __init__(self) -> None:
        self.inParts: list[str] = []

    def load(self, key: str) -> None:
        pass

    def loadParts(self, key: str) -> None:
        self.inParts.append(key)

    def save(self, key: str) -> None:
        pass

    def saveParts(self, key: str) -> None:
        self.inParts.append("save " + key)


class _LoadOverridden(_InParts):
    def load(self, key: str) -> None:
        pass


class _SaveOverridden(_InParts):
    def save(self, key: str) -> None:
        pass


def test_loadAndSaveInPartsAreTakenOnlyFromTheClassesThatDefineLoadAndSave() -> None:
    """
    A subclass that overrides C{load} (or C{save}) alone is loaded (or
    saved) through it: the C{loadParts} (or C{saveParts}) it inherits would
    skip it.
    """
    database = _InParts()
    loading, saving = loadInParts(database), saveInParts(database)
    assert loading is not None and saving is not None
    loading("k")
    saving("k")
    assert database.inParts == ["k", "save k"]
    assert loadInParts(_LoadOverridden()) is None
    assert saveInParts(_LoadOverridden()) is not None
    assert saveInParts(_SaveOverridden()) is None
    assert loadInParts(object()) is None is saveInParts(object())


def _calls(timeout: float = 3.0) -> tuple[DatabaseCalls, Clock, Metrics]:
    clock = Clock()
    metrics = Metrics()
    return DatabaseCalls(clock, metrics, timeout), clock, metrics


def _outcome(d: Deferred[Any]) -> list[Any]:
    """
    What C{d} fires with, once it does (a L{Failure} is consumed).
    """
    fired: list[Any] = []
    d.addBoth(fired.append)
    return fired


def test_aCallAnsweredInTimeGivesItsResultAndLeavesNoTimer() -> None:
    calls, clock, metrics = _calls()
    answer: Deferred[str] = Deferred()
    fired = _outcome(calls.call(answer, "load"))
    clock.advance(2.9)
    answer.callback("stored")
    assert fired == ["stored"]
    assert clock.getDelayedCalls() == []
    assert metrics.latency["load"].calls == 1
    assert metrics.storeErrors == 0


def test_aCallSlowerThanItsDeadlineFailsWithDatabaseErrorCountedOnce() -> None:
    calls, clock, metrics = _calls()
    answer: Deferred[str] = Deferred()
    fired = _outcome(calls.call(answer, "save"))
    clock.advance(2.99)
    assert fired == []
    clock.advance(0.01)
    [failure] = fired
    assert isinstance(failure, Failure) and failure.check(DatabaseError)
    assert "did not answer in 3.0 s" in failure.getErrorMessage()
    assert metrics.storeErrors == 1
    assert clock.getDelayedCalls() == []


def test_aLateAnswerIsDropped() -> None:
    calls, clock, metrics = _calls()
    answer: Deferred[str] = Deferred()
    fired = _outcome(calls.call(answer, "load"))
    clock.advance(3)
    answer.callback("too late")
    assert len(fired) == 1 and isinstance(fired[0], Failure)
    assert answer.result is None  # dropped, not an unhandled error either


def test_theDeadlineCancelsTheCall() -> None:
    """
    At its deadline a call is cancelled, as L{Deferred.addTimeout} does, so
    that the database may give it up (the Redis connection forgets its
    reply): the caller gets the L{DatabaseError}, not the cancellation, and
    no second L{Deferred} stands between them.
    """
    calls, clock, metrics = _calls()
    cancelled: list[Deferred[str]] = []
    answer: Deferred[str] = Deferred(cancelled.append)
    called = calls.call(answer, "load")
    assert called is answer
    fired = _outcome(called)
    clock.advance(3)
    assert cancelled == [answer]
    [failure] = fired
    assert failure.check(DatabaseError) and not failure.check(CancelledError)
    assert metrics.storeErrors == 1
    assert clock.getDelayedCalls() == []


def test_aLateFailureIsDroppedAndNotCountedAgain() -> None:
    calls, clock, metrics = _calls()
    answer: Deferred[str] = Deferred()
    _outcome(calls.call(answer, "load"))
    clock.advance(3)
    answer.errback(RuntimeError("gone"))
    assert metrics.storeErrors == 1
    assert answer.result is None


def test_eachCallHasItsOwnDeadline() -> None:
    calls, clock, _ = _calls()
    first: Deferred[str] = Deferred()
    second: Deferred[str] = Deferred()
    firstFired = _outcome(calls.call(first, "load"))
    clock.advance(1)
    secondFired = _outcome(calls.call(second, "load"))
    clock.advance(2)
    assert len(firstFired) == 1 and secondFired == []
    clock.advance(0.99)
    assert secondFired == []
    clock.advance(0.01)
    assert len(secondFired) == 1 and isinstance(secondFired[0], Failure)
    assert clock.getDelayedCalls() == []


def test_aCallAfterAnAnsweredOneStillGetsItsDeadline() -> None:
    calls, clock, _ = _calls()
    first: Deferred[str] = Deferred()
    second: Deferred[str] = Deferred()
    calls.call(first, "load")
    clock.advance(2)
    secondFired = _outcome(calls.call(second, "load"))
    first.callback("answered")
    clock.advance(1)
    assert secondFired == []
    clock.advance(2)
    assert len(secondFired) == 1 and isinstance(secondFired[0], Failure)


def test_oneTimerServesEveryCallUnderWay() -> None:
    """
    A hundred calls under way keep one timer between them, not one each.
    """
    calls, clock, _ = _calls()
    answers: list[Deferred[int]] = [Deferred() for _ in range(100)]
    outcomes = []
    for answer in answers:
        outcomes.append(_outcome(calls.call(answer, "load")))
        clock.advance(0.01)
    assert len(clock.getDelayedCalls()) == 1
    for n, answer in enumerate(answers[:50]):
        answer.callback(n)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(3)
    assert outcomes[:50] == [[n] for n in range(50)]
    assert all(isinstance(o[0], Failure) for o in outcomes[50:])
    assert clock.getDelayedCalls() == []


def test_aFailureBecomesADatabaseErrorLoggedAndCountedOnce() -> None:
    calls, clock, metrics = _calls()
    answer: Deferred[str] = Deferred()
    fired = _outcome(calls.call(answer, "save"))
    answer.errback(ConnectionError("lost"))
    [failure] = fired
    assert failure.check(DatabaseError)
    assert "ConnectionError: lost" in failure.getErrorMessage()
    assert metrics.storeErrors == 1
    assert clock.getDelayedCalls() == []


def test_aCancellationIsPassedOnAsItIs() -> None:
    calls, clock, metrics = _calls()
    answer: Deferred[str] = Deferred()
    raced = calls.call(answer, "load")
    fired = _outcome(raced)
    raced.cancel()
    assert fired[0].check(CancelledError)
    answer.callback("after the client left")
    assert metrics.storeErrors == 0
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("timeout", [0, 3])
def test_aCallAnsweredAlreadyIsTimedAndMapped(timeout: float) -> None:
    calls, clock, metrics = _calls(timeout)
    assert _outcome(calls.call(succeed("at once"), "load")) == ["at once"]
    [failure] = _outcome(calls.call(fail(RuntimeError("broken")), "save"))
    assert failure.check(DatabaseError)
    assert metrics.storeErrors == 1
    assert metrics.latency["load"].calls == metrics.latency["save"].calls == 1
    assert clock.getDelayedCalls() == []


def test_noTimeoutMeansNoDeadline() -> None:
    calls, clock, _ = _calls(0)
    answer: Deferred[str] = Deferred()
    fired = _outcome(calls.call(answer, "load"))
    assert clock.getDelayedCalls() == []
    clock.advance(365 * 24 * 3600)
    answer.callback("eventually")
    assert fired == ["eventually"]


def test_aCancelledCallThatNeverAnswersIsForgottenAtItsDeadline() -> None:
    calls, clock, metrics = _calls()
    raced: Deferred[str] = calls.call(Deferred(), "load")
    _outcome(raced)
    raced.cancel()
    clock.advance(3)  # nothing fails twice
    assert metrics.storeErrors == 0
    assert clock.getDelayedCalls() == []
