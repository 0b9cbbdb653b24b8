"""
Session lifetimes: expiry, shiftExpiration and updateExpiration.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.web.test.requesthelper import DummyRequest

from tests.apps import kvBrowser
from tests.support import (
    COOKIE,
    Browser,
    ControlledDatabase,
    cookieValue,
    login,
    resultOf,
    setCookies,
)
from txsessions import Config, DestroyReason, Sessions
from txsessions.codec import CookieCodec, generateKey
from txsessions.ids import storeKey
from txsessions.interfaces import Lifetime, SessionChanges


def stored(sessions: Sessions, sid: str) -> Any:
    return resultOf(sessions.database.load(storeKey(sid)))


def test_updateExpirationExtendsTheLifetimeAndResendsTheCookie(
    browser: Browser, sessions: Sessions, clock: Any
) -> None:
    sid = login(browser)
    clock.advance(5)
    response, _ = browser.get("/remember/3600", {COOKIE: sid})
    [header] = setCookies(response)
    assert header.startswith(f"{COOKIE}={sid}; Path=/; Expires=")
    assert "; Max-Age=3600; " in header
    assert stored(sessions, sid).lifetime == Lifetime(0, 3605)
    clock.advance(100)
    assert json.loads(browser.get("/all", {COOKIE: sid})[1])["isNew"] is False


def test_updateExpirationPastTheCodecsMaxAgeIsRefused(clock: Any) -> None:
    """
    "Remember me" for 30 days with cookie values that expire after 7 would
    log the client out on day 8, its session left behind (helper-26).
    """
    week = 7 * 24 * 3600.0
    codec = CookieCodec([generateKey()], maxAge=week, clock=clock.seconds)
    sessions = Sessions(Config(cookie=COOKIE, encoding=codec), clock=clock)
    request: Any = DummyRequest([b""])
    with pytest.raises(ValueError, match="maxAge"):
        sessions.updateExpiration(request, 30 * 24 * 3600)
    response, _ = kvBrowser(sessions).get(f"/remember/{int(week)}")
    assert response.code == 200


def test_updateExpirationReplacesTheCookieOfThisResponse(browser: Browser) -> None:
    response, _ = browser.get("/setthenremember/60")
    [header] = setCookies(response)
    assert "; Max-Age=61; " in header


def test_shiftExpirationOfAnUnwrittenSessionStoresNothing(
    browser: Browser, sessions: Sessions
) -> None:
    # Calling shiftExpiration on every request costs nothing for visitors
    # who never write: the lifetime waits for the session's first write.
    response, _ = browser.get("/shift")
    assert setCookies(response) == []
    assert resultOf(sessions.count()) == 0


def test_updateExpirationOfAnUnwrittenNewSessionStoresIt(
    browser: Browser, sessions: Sessions
) -> None:
    # Issue 16: "remember me" on a fresh session, with nothing else set,
    # stores the session and sends its cookie (before: neither).
    response, _ = browser.get("/remember/600")
    sid = cookieValue(response, COOKIE)
    assert "; Max-Age=600; " in setCookies(response)[0]
    assert stored(sessions, sid).lifetime == Lifetime(0, 600)


def test_updateExpirationOfANewSessionSetsTheLifetimeItIsCreatedWith(
    browser: Browser, sessions: Sessions
) -> None:
    # Iris answers ErrNotFound for a session started in the same request.
    response, _ = browser.get("/setthenremember/600")
    sid = cookieValue(response, COOKIE)
    assert "; Max-Age=601; " in setCookies(response)[0]
    assert stored(sessions, sid).lifetime == Lifetime(0, 601)


def test_updateExpirationToZeroMeansNoLifetime(
    browser: Browser, sessions: Sessions, clock: Any
) -> None:
    sid = login(browser)
    response, _ = browser.get("/remember/0", {COOKIE: sid})
    [header] = setCookies(response)
    assert "Max-Age" not in header and "Expires" not in header
    assert stored(sessions, sid).lifetime == Lifetime(0, None)
    clock.advance(10_000)
    assert stored(sessions, sid) is not None
    assert clock.getDelayedCalls() == []


def test_updateExpirationToZeroKeepsTheIdleTimeout(
    clock: Any, db: ControlledDatabase
) -> None:
    """
    With an C{idleTimeout}, C{updateExpiration(request, 0)} (a "remember me"
    box left unticked) gives the session the idle lifetime, not none: the
    idle timeout is enforced server-side whatever the application asks.
    (Before, the session lost its end, and lived for ever.)
    """
    sessions = Sessions(Config(cookie=COOKIE, idleTimeout=60), db, clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    clock.advance(30)
    response, _ = browser.get("/remember/0", {COOKIE: sid})
    assert "; Max-Age=60; " in setCookies(response)[0]
    assert stored(sessions, sid).lifetime == Lifetime(0, 90)
    clock.advance(61)
    assert stored(sessions, sid) is None


def test_shiftExpirationMakesExpirySliding(
    browser: Browser, sessions: Sessions, clock: Any
) -> None:
    sid = login(browser)
    for _ in range(5):
        clock.advance(9)
        response, _ = browser.get("/shift", {COOKIE: sid})
        assert "; Max-Age=10; " in setCookies(response)[0]
    assert stored(sessions, sid).lifetime == Lifetime(0, 55)
    clock.advance(10)
    assert stored(sessions, sid) is None


def test_shiftExpirationOfAnIdleTimedSessionKeepsItMortal(
    clock: Any, db: ControlledDatabase
) -> None:
    sessions = Sessions(Config(cookie=COOKIE, idleTimeout=10), db, clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    clock.advance(5)
    browser.get("/shift", {COOKIE: sid})
    assert stored(sessions, sid).lifetime == Lifetime(0, 15)
    clock.advance(15)
    assert stored(sessions, sid) is None


def test_readsAndWritesNeverExtendTheLifetime(
    browser: Browser, sessions: Sessions, clock: Any
) -> None:
    sid = login(browser)
    clock.advance(9)
    response, _ = browser.get("/set/a/1", {COOKIE: sid})
    assert setCookies(response) == []
    clock.advance(1)
    assert json.loads(browser.get("/all", {COOKIE: sid})[1])["isNew"] is True


def test_expiredSessionFiresOneEvent(
    browser: Browser, sessions: Sessions, clock: Any
) -> None:
    events: list[Any] = []
    sessions.onDestroy(lambda *a: events.append(a))
    sid = login(browser)
    clock.advance(30)
    assert events == [(storeKey(sid), DestroyReason.expired)]
    assert clock.getDelayedCalls() == []


def test_updateExpirationOfADestroyedSessionStoresNothing(
    clock: Any, db: ControlledDatabase
) -> None:
    sessions = Sessions(Config(cookie=COOKIE, expires=10), db, clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    resultOf(sessions.destroyByID(sid))
    response, _ = browser.get("/remember/60", {COOKIE: sid})
    # The destroyed session stays destroyed: what updateExpiration stores is
    # a new session under a new id.
    assert cookieValue(response, COOKIE) != sid
    assert resultOf(sessions.database.load(storeKey(sid))) is None
    assert resultOf(sessions.count()) == 1


def idleWorld(
    clock: Any, **config: Any
) -> tuple[Sessions, Browser, ControlledDatabase]:
    db = ControlledDatabase(clock)
    sessions = Sessions(Config(cookie=COOKIE, **config), db, clock)
    return sessions, kvBrowser(sessions), db


def test_idleTimeoutSlidesWithUse(clock: Any) -> None:
    sessions, browser, db = idleWorld(clock, idleTimeout=100)
    sid = login(browser)
    for _ in range(10):
        clock.advance(90)
        _, body = browser.get("/get/user", {COOKIE: sid})
        assert json.loads(body) == "alice"
    clock.advance(100)
    assert json.loads(browser.get("/all", {COOKIE: sid})[1])["isNew"] is True


def test_idleTouchesAreThrottledAndResendTheCookie(clock: Any) -> None:
    sessions, browser, db = idleWorld(clock, idleTimeout=100)
    sid = login(browser)
    saves = len(db.saves)
    clock.advance(4)
    response, _ = browser.get("/get/user", {COOKIE: sid})
    assert len(db.saves) == saves and setCookies(response) == []
    clock.advance(1)
    response, _ = browser.get("/get/user", {COOKIE: sid})
    assert len(db.saves) == saves + 1
    assert db.saves[-1] == SessionChanges(lifetime=Lifetime(0, 105))
    assert "; Max-Age=100; " in setCookies(response)[0]


def test_idleTimeoutEndsByTimerToo(clock: Any) -> None:
    sessions, browser, _ = idleWorld(clock, idleTimeout=100)
    events: list[Any] = []
    sessions.onDestroy(lambda *a: events.append(a))
    sid = login(browser)
    clock.advance(100)
    assert events == [(storeKey(sid), DestroyReason.expired)]


def test_absoluteTimeoutCapsUpdateExpiration(clock: Any) -> None:
    sessions, browser, _ = idleWorld(clock, absoluteTimeout=50)
    sid = login(browser)
    response, _ = browser.get("/remember/3600", {COOKIE: sid})
    assert "; Max-Age=50; " in setCookies(response)[0]
    assert stored(sessions, sid).lifetime == Lifetime(0, 50)


def test_expiresAndIdleTimeoutAreExclusive() -> None:
    import pytest

    with pytest.raises(ValueError, match="choose one"):
        Config(expires=10, idleTimeout=10)
    assert Config(idleTimeout=10, absoluteTimeout=100).absoluteTimeout == 100
