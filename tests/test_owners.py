"""
Sessions that know their user (issue 19): L{Session.setOwner},
L{Sessions.sessionsOf} and L{Sessions.destroyOwner}, through HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.iweb import IRequest

import txsessions
from tests.support import COOKIE, Browser, cookieValue, resultOf, setCookies
from txsessions import Config, DestroyReason, Sessions
from txsessions.db.memory import MemoryDatabase


def ownersApp(sessions: Sessions) -> Klein:
    app = Klein()

    @app.route("/login/<user>")
    async def login(request: IRequest, user: str) -> str:
        session = txsessions.get(request)
        await session.regenerate()
        session.setOwner(user)
        return "ok"

    @app.route("/whoami")
    def whoami(request: IRequest) -> str:
        return json.dumps(txsessions.get(request).owner)

    @app.route("/regenerate")
    async def regenerate(request: IRequest) -> str:
        await txsessions.get(request).regenerate()
        return "ok"

    @app.route("/touch")
    def touch(request: IRequest) -> str:
        txsessions.get(request).set("x", 1)
        return "ok"

    @app.route("/clear")
    def clear(request: IRequest) -> str:
        txsessions.get(request).clear()
        return "ok"

    @app.route("/logout")
    async def logout(request: IRequest) -> str:
        await txsessions.get(request).destroy()
        return "ok"

    @app.route("/mine")
    async def mine(request: IRequest) -> str:
        owner = txsessions.get(request).owner
        assert owner is not None
        found = await sessions.sessionsOf(owner, current=request)
        return json.dumps(
            [
                {
                    "key": info.key,
                    "current": info.current,
                    "lastSeen": info.lastSeen,
                    "userAgent": info.userAgent,
                    "expiresAt": info.lifetime.expiresAt,
                }
                for info in found
            ]
        )

    @app.route("/others")
    async def others(request: IRequest) -> str:
        owner = txsessions.get(request).owner
        assert owner is not None
        return str(await sessions.destroyOwner(owner, keep=request))

    return app


class Saves(MemoryDatabase):
    """
    A memory database that counts its saves.
    """

    saves = 0

    def save(self, key: str, changes: Any) -> Any:
        self.saves += 1
        return super().save(key, changes)


@pytest.fixture
def database(clock: Clock) -> Saves:
    return Saves(clock)


@pytest.fixture
def owners(clock: Clock, database: Saves) -> Sessions:
    return Sessions(
        Config(cookie=COOKIE, expires=3600, lastSeenInterval=300), database, clock
    )


@pytest.fixture
def browser(owners: Sessions) -> Browser:
    return Browser(owners.wrap(ownersApp(owners).resource()))


def get(
    browser: Browser, path: str, cookie: str | None = None, agent: str = "Firefox"
) -> tuple[Any, bytes]:
    cookies = {} if cookie is None else {COOKIE: cookie}
    headers = {b"User-Agent": [agent.encode()]}
    return browser.request("GET", path, cookies, headers)


def login(browser: Browser, user: str, agent: str = "Firefox") -> str:
    response, body = get(browser, f"/login/{user}", agent=agent)
    assert body == b"ok"
    return cookieValue(response, COOKIE)


def whoami(browser: Browser, cookie: str) -> Any:
    return json.loads(get(browser, "/whoami", cookie)[1])


def mine(browser: Browser, cookie: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(get(browser, "/mine", cookie)[1])
    return result


def test_theOwnerIsSavedWithTheSession(browser: Browser) -> None:
    cookie = login(browser, "alice")
    assert whoami(browser, cookie) == "alice"


def test_aNewSessionHasNoOwner(browser: Browser) -> None:
    assert json.loads(get(browser, "/whoami")[1]) is None


def test_theOwnerSurvivesRegeneration(browser: Browser) -> None:
    cookie = login(browser, "alice")
    [before] = mine(browser, cookie)
    response, _ = get(browser, "/regenerate", cookie)
    cookie = cookieValue(response, COOKIE)
    assert whoami(browser, cookie) == "alice"
    [after] = mine(browser, cookie)
    assert after["key"] != before["key"] and after["current"]


def test_theOwnerSurvivesClear(browser: Browser) -> None:
    cookie = login(browser, "alice")
    get(browser, "/clear", cookie)
    assert whoami(browser, cookie) == "alice"
    assert len(mine(browser, cookie)) == 1


def test_sessionsOfListsTheUsersSessionsAndMarksThisOne(
    browser: Browser, clock: Clock
) -> None:
    phone = login(browser, "alice", agent="Phone")
    clock.advance(10)
    laptop = login(browser, "alice", agent="Laptop")
    login(browser, "bob")
    listed = mine(browser, laptop)
    # The most recently seen first.
    assert [(s["userAgent"], s["current"], s["lastSeen"]) for s in listed] == [
        ("Laptop", True, 10.0),
        ("Phone", False, 0.0),
    ]
    assert [s["current"] for s in mine(browser, phone)] == [False, True]
    assert all(s["expiresAt"] is not None for s in listed)
    assert phone not in json.dumps(listed) and laptop not in json.dumps(listed)


def test_lastSeenIsWrittenAtMostOncePerInterval(
    browser: Browser, clock: Clock, database: Saves
) -> None:
    cookie = login(browser, "alice")
    saves = database.saves
    clock.advance(299)
    assert whoami(browser, cookie) == "alice"
    clock.advance(0.5)
    assert whoami(browser, cookie) == "alice"
    assert database.saves == saves
    [info] = mine(browser, cookie)
    assert info["lastSeen"] == 0.0
    clock.advance(0.5)
    assert whoami(browser, cookie) == "alice"
    assert database.saves == saves + 1
    [info] = mine(browser, cookie)
    assert info["lastSeen"] == 300.0


def test_aSessionWithoutOwnerCostsNoLastSeenWrite(
    browser: Browser, clock: Clock, database: Saves
) -> None:
    response, _ = get(browser, "/touch")
    cookie = cookieValue(response, COOKIE)
    saves = database.saves
    for _ in range(3):
        clock.advance(400)
        assert json.loads(get(browser, "/whoami", cookie)[1]) is None
    assert database.saves == saves


def test_destroyOwnerKeepsTheCallersSession(browser: Browser, owners: Sessions) -> None:
    events: list[tuple[str, DestroyReason]] = []
    owners.onDestroy(lambda key, reason: events.append((key, reason)))
    here = login(browser, "alice")
    phone, tablet = login(browser, "alice"), login(browser, "alice")
    bob = login(browser, "bob")
    events.clear()
    assert get(browser, "/others", here)[1] == b"2"
    assert whoami(browser, here) == "alice"
    assert whoami(browser, phone) is None and whoami(browser, tablet) is None
    assert whoami(browser, bob) == "bob"
    assert [reason for _, reason in events] == [DestroyReason.owner] * 2
    assert [s["current"] for s in mine(browser, here)] == [True]


def test_destroyOwnerEndsEverySession(browser: Browser, owners: Sessions) -> None:
    cookies = [login(browser, "alice") for _ in range(3)]
    ended: list[int] = []
    owners.destroyOwner("alice").addCallback(ended.append)
    assert ended == [3]
    assert [whoami(browser, cookie) for cookie in cookies] == [None] * 3
    done: list[Any] = []
    owners.sessionsOf("alice").addCallback(done.append)
    assert done == [[]]


def test_aDestroyedSessionLeavesTheList(browser: Browser) -> None:
    first, second = login(browser, "alice"), login(browser, "alice")
    get(browser, "/logout", first)
    assert [s["current"] for s in mine(browser, second)] == [True]


def test_anExpiredSessionLeavesTheList(browser: Browser, clock: Clock) -> None:
    old = login(browser, "alice")
    clock.advance(3000)
    new = login(browser, "alice")
    clock.advance(700)  # old has lived its hour
    assert whoami(browser, old) is None
    assert [s["current"] for s in mine(browser, new)] == [True]


@pytest.mark.parametrize("owner", ["", "a\x00b", "x" * 257, 7, None, "bob\ud800"])
def test_setOwnerRefusesWhatIsNoOwner(owner: Any) -> None:
    from tests.test_session import new

    with pytest.raises(ValueError, match="1 to 256 bytes"):
        new().setOwner(owner)


def test_theOwnerIsSetWithSetOwnerAlone() -> None:
    """
    C{session.owner} is read only: assigning it had changed the attribute
    alone, the owner neither saved nor in the owner's list of sessions,
    with no error to say so.
    """
    from tests.test_session import new

    session = new()
    with pytest.raises(AttributeError):
        session.owner = "mallory"  # type: ignore[misc]
    assert session.owner is None
    session.setOwner("alice")
    assert session.owner == "alice"


def test_aRequestOnAnEndedSessionCarriesOnWithoutItsOwner(clock: Clock) -> None:
    """
    A request under way on a session that destroyOwner ends, and that then
    regenerates it, carries on in a new session without the owner, even
    when it noted the owner's last-seen time on loading (the session's own
    write, not the application's).  (Before the fix, that note counted as
    written by the request: the new session came back owned by the user
    that was just logged out everywhere.)
    """
    sessions = Sessions(
        Config(cookie=COOKIE, expires=3600, lastSeenInterval=300),
        MemoryDatabase(clock),
        clock,
    )
    app = ownersApp(sessions)
    gate: list[Deferred[None]] = []

    @app.route("/slow-regenerate")
    async def slowRegenerate(request: IRequest) -> str:
        session = txsessions.get(request)
        waiting: Deferred[None] = Deferred()
        gate.append(waiting)
        await waiting
        await session.regenerate()
        return json.dumps(session.owner)

    browser = Browser(sessions.wrap(app.resource()))
    cookie = login(browser, "alice")
    clock.advance(301)  # the last-seen time is noted on the next load
    pending = browser.start("/slow-regenerate", {COOKIE: cookie})
    assert len(gate) == 1
    ended: list[int] = []
    sessions.destroyOwner("alice").addCallback(ended.append)
    assert ended == [1]
    gate[0].callback(None)
    pending.flush()
    [response] = pending.fired
    assert resultOf(response.content()) == b"null"
    # Nothing of the request's own was left to store: no new session.
    assert not [c for c in setCookies(response) if "Max-Age=0" not in c]
    listed: list[Any] = []
    sessions.sessionsOf("alice").addCallback(listed.append)
    assert listed == [[]]


class Regenerated(MemoryDatabase):
    """
    A memory database on which, once, a session listed by C{sessionsOf} is
    regenerated before its caller can act on the list: as a request running
    beside C{destroyOwner} may.
    """

    renamed: str | None = None

    def sessionsOf(self, owner: str) -> Any:
        def thenRename(found: Any) -> Any:
            if found and self.renamed is None:
                self.renamed = found[0].key + "x"
                self.rename(found[0].key, self.renamed)
            return found

        return super().sessionsOf(owner).addCallback(thenRename)


def test_destroyOwnerEndsASessionRegeneratedWhileItRuns(clock: Clock) -> None:
    """
    A session regenerated between destroyOwner's listing and its destroy is
    found again and ended.  (Before the fix, its destroy found nothing under
    the listed key, and the session lived on under its new one, still the
    user's.)
    """
    database = Regenerated(clock)
    sessions = Sessions(Config(cookie=COOKIE, expires=3600), database, clock)
    browser = Browser(sessions.wrap(ownersApp(sessions).resource()))
    login(browser, "alice")
    login(browser, "alice")
    ended: list[int] = []
    sessions.destroyOwner("alice").addCallback(ended.append)
    assert database.renamed is not None
    assert ended == [2]
    listed: list[Any] = []
    sessions.sessionsOf("alice").addCallback(listed.append)
    assert listed == [[]]


@pytest.mark.parametrize(
    ("waited", "writes", "code"),
    [(120, False, 200), (301, False, 200), (301, True, 409)],
    ids=["idle push-back", "last seen", "a value of its own"],
)
def test_logOutEverywhereFromTheUsersOwnRequest(
    clock: Clock, waited: int, writes: bool, code: int
) -> None:
    """
    A request that ends every session of its own user (destroyOwner with
    no keep, after a password change) gets its handler's answer, not a
    409, and no cookie, when all its session had to save was what
    the session wrote itself on loading: the idle lifetime pushed back, or
    the owner's last-seen time.  (Before the fix, that save found the
    session gone and the response was a 409 "changed by another request".)
    Having written a value of its own, it still gets the 409: its change
    was lost.
    """
    sessions = Sessions(
        Config(cookie=COOKIE, idleTimeout=1800, lastSeenInterval=300),
        MemoryDatabase(clock),
        clock,
    )
    app = ownersApp(sessions)

    @app.route("/password")
    async def password(request: IRequest) -> str:
        session = txsessions.get(request)
        if writes:
            session.set("changed", True)
        assert session.owner is not None
        return f"{await sessions.destroyOwner(session.owner)} ended"

    browser = Browser(sessions.wrap(app.resource()))
    cookie = login(browser, "alice")
    clock.advance(waited)
    response, body = get(browser, "/password", cookie)
    assert response.code == code
    if code == 200:
        assert body == b"1 ended"
        # The client's cookie is left alone: its id names no session now,
        # and another tab may have given it a newer one meanwhile
        # (test_aReadDuringALoginInAnotherTabKeepsTheLogin).
        assert setCookies(response) == []
    assert whoami(browser, cookie) is None


def test_theOwnerSurvivesClearInTheRequestThatSetIt() -> None:
    """
    setOwner, then clear, on a new session: the owner is stored, not only
    seen by that request (helper-28: it was dropped with the values).
    """
    from txsessions.testing import SessionsKit

    kit = SessionsKit(Config(cookie=COOKIE))
    app = Klein()

    @app.route("/login")
    @kit.sessions.withSession
    def login(request: IRequest, session: txsessions.Session) -> str:
        session.setOwner("alice")
        session.clear()
        session.set("x", 1)
        return "ok"

    @app.route("/whoami")
    @kit.sessions.withSession
    def whoami(request: IRequest, session: txsessions.Session) -> str:
        return json.dumps(session.owner)

    browser = kit.browser(app)
    assert browser.get("/login").text == "ok"
    assert browser.get("/whoami").text == '"alice"'
    assert len(kit.result(kit.sessions.sessionsOf("alice"))) == 1


def test_anOwnerIsAtMost256BytesOfUTF8() -> None:
    """
    Every database takes what setOwner accepts: LMDB's index keys are at
    most 511 bytes, and 200 CJK characters (600 bytes) failed there with a
    503 (helper-28).
    """
    from tests.test_session import new

    with pytest.raises(ValueError, match="256 bytes"):
        new().setOwner("用" * 86)  # 258 bytes, 86 characters
