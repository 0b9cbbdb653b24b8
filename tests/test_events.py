"""
Destroy events: each reason, exactly once, and listeners that misbehave.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import COOKIE, Browser, login, resultOf
from txsessions import DestroyReason, Sessions
from txsessions.ids import storeKey


@pytest.fixture
def events(sessions: Sessions) -> list[tuple[str, DestroyReason]]:
    recorded: list[tuple[str, DestroyReason]] = []
    sessions.onDestroy(lambda key, reason: recorded.append((key, reason)))
    return recorded


def test_destroyed(browser: Browser, events: list[Any]) -> None:
    sid = login(browser)
    browser.get("/destroy", {COOKIE: sid})
    browser.get("/destroy", {COOKIE: sid})
    assert events == [(storeKey(sid), DestroyReason.destroyed)]


def test_expired(browser: Browser, events: list[Any], clock: Any) -> None:
    sid = login(browser)
    clock.advance(10)
    clock.advance(10)
    assert events == [(storeKey(sid), DestroyReason.expired)]


def test_destroyByID(browser: Browser, sessions: Sessions, events: list[Any]) -> None:
    sid = login(browser)
    resultOf(sessions.destroyByID(sid))
    resultOf(sessions.destroyByID(sid))
    assert events == [(storeKey(sid), DestroyReason.destroyByID)]


def test_destroyAll(browser: Browser, sessions: Sessions, events: list[Any]) -> None:
    first, second = login(browser), login(browser)
    assert resultOf(sessions.destroyAll()) == 2
    assert sorted(events) == sorted(
        [
            (storeKey(first), DestroyReason.destroyAll),
            (storeKey(second), DestroyReason.destroyAll),
        ]
    )


def test_listenersRunInRegistrationOrder(browser: Browser, sessions: Sessions) -> None:
    order: list[int] = []
    for i in range(3):
        sessions.onDestroy(lambda key, reason, i=i: order.append(i))  # type: ignore[misc]
    resultOf(sessions.destroyByID(login(browser)))
    assert order == [0, 1, 2]


def destroyLogged(sessions: Sessions, sid: str) -> list[Any]:
    """
    @return: the log events emitted while C{sessions} destroys the session
        C{sid}.
    """
    from twisted.logger import globalLogPublisher

    logged: list[Any] = []
    observer: Any = logged.append
    globalLogPublisher.addObserver(observer)
    try:
        resultOf(sessions.destroyByID(sid))
    finally:
        globalLogPublisher.removeObserver(observer)
    return logged


def test_aRaisingListenerIsLoggedAndTheOthersRun(
    browser: Browser, sessions: Sessions
) -> None:
    seen: list[str] = []

    def bad(key: str, reason: DestroyReason) -> None:
        raise RuntimeError("listener bug")

    sessions.onDestroy(bad)
    sessions.onDestroy(lambda key, reason: seen.append(key))
    sid = login(browser)
    logged = destroyLogged(sessions, sid)
    assert seen == [storeKey(sid)]
    [failure] = [e for e in logged if "log_failure" in e]
    assert "listener bug" in str(failure["log_failure"].value)
    assert sid not in repr(failure) and storeKey(sid) not in repr(failure)


def test_aListenerMayCallBackIntoTheManager(
    browser: Browser, sessions: Sessions
) -> None:
    others = [login(browser) for _ in range(3)]
    destroyedFromListener: list[bool] = []

    def cascade(key: str, reason: DestroyReason) -> None:
        if reason is DestroyReason.destroyByID:
            destroyedFromListener.append(resultOf(sessions.destroyByID(others[1])))
            resultOf(sessions.count())

    sessions.onDestroy(cascade)
    resultOf(sessions.destroyByID(others[0]))
    # The nested call sees the session already gone, and returns first.
    assert destroyedFromListener == [False, True]
    assert resultOf(sessions.count()) == 1


def test_onDestroyRefusesWhatCannotBeCalled(sessions: Sessions) -> None:
    """
    C{onDestroy(None)} raises at once: it had been taken, and every destroy
    after logged a C{TypeError} (helper-38).
    """
    with pytest.raises(TypeError, match="a destroy listener is a callable"):
        sessions.onDestroy(None)  # type: ignore[arg-type]


def test_anAsyncListenerRunsAndItsFailureIsLogged(
    browser: Browser, sessions: Sessions
) -> None:
    """
    An C{async def} listener runs (it had been called and its coroutine
    dropped, never run), and one whose coroutine fails is logged as a
    listener that raises is; so is a listener returning a failed Deferred,
    rather than an unhandled error in it (helper-38).
    """
    from twisted.internet.defer import fail

    heard: list[str] = []

    async def listener(key: str, reason: DestroyReason) -> None:
        heard.append(key)

    async def failing(key: str, reason: DestroyReason) -> None:
        raise RuntimeError("async listener bug")

    sessions.onDestroy(listener)
    sessions.onDestroy(failing)
    sessions.onDestroy(lambda key, reason: fail(RuntimeError("deferred bug")))
    sid = login(browser)
    logged = destroyLogged(sessions, sid)
    assert heard == [storeKey(sid)]
    failures = [str(e["log_failure"].value) for e in logged if "log_failure" in e]
    assert failures == ["async listener bug", "deferred bug"]


def test_onDestroyReturnsItsRemover(browser: Browser, sessions: Sessions) -> None:
    heard: list[str] = []
    remove = sessions.onDestroy(lambda key, reason: heard.append(key))
    remove()
    sid = login(browser)
    resultOf(sessions.destroyByID(sid))
    assert heard == []


@pytest.fixture
def lifecycle() -> Any:
    from twisted.logger import globalLogPublisher

    events: list[dict[str, Any]] = []

    def observe(event: Any) -> None:
        if event.get("sessionEvent") in {"created", "destroyed", "regenerated"}:
            events.append(event)

    observer: Any = observe
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def test_lifecycleEventsAreNotLoggedByDefault(
    browser: Browser, sessions: Sessions, lifecycle: list[Any]
) -> None:
    sid = login(browser)
    browser.get("/regenerate", {COOKIE: sid})
    resultOf(sessions.destroyAll())
    assert lifecycle == []
    assert sessions.metrics.created == 1
    assert sessions.metrics.destroyed["regenerated"] == 1
    assert sessions.metrics.destroyed["destroyAll"] == 1


def test_lifecycleEventsAreLoggedOnRequest(
    clock: Any, db: Any, lifecycle: list[Any]
) -> None:
    from tests.apps import kvBrowser
    from txsessions import Config

    sessions = Sessions(Config(cookie=COOKIE, logSessionEvents=True), db, clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    browser.get("/regenerate", {COOKIE: sid})
    kinds = [event["sessionEvent"] for event in lifecycle]
    assert kinds == ["created", "destroyed", "regenerated"]
