from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from tests.apps import kvApp, kvBrowser
from tests.support import (
    COOKIE,
    Browser,
    ControlledDatabase,
    cookieValue,
    login,
    resultOf,
    setCookies,
)
from txsessions import (
    Config,
    DestroyReason,
    MemoryDatabase,
    NoSessionError,
    SessionError,
    Sessions,
    get,
)
from txsessions.ids import storeKey
from txsessions.interfaces import SessionChanges


@pytest.fixture
def events(sessions: Sessions) -> list[tuple[str, DestroyReason]]:
    recorded: list[tuple[str, DestroyReason]] = []
    sessions.onDestroy(lambda key, reason: recorded.append((key, reason)))
    return recorded


def count(sessions: Sessions) -> int:
    return resultOf(sessions.count())


def test_readOnlyNewSessionStoresNothingAndSendsNoCookie(
    browser: Browser, sessions: Sessions
) -> None:
    response, body = browser.get("/all")
    assert json.loads(body) == {"isNew": True, "values": {}}
    assert setCookies(response) == []
    assert count(sessions) == 0


def test_writtenSessionIsStoredAndResumed(browser: Browser, sessions: Sessions) -> None:
    sid = login(browser)
    assert count(sessions) == 1
    response, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body) == {"isNew": False, "values": {"user": "alice"}}
    assert setCookies(response) == []


def test_unchangedSessionIsNotWritten(browser: Browser, db: ControlledDatabase) -> None:
    sid = login(browser)
    saves = len(db.saves)
    browser.get("/get/user", {COOKIE: sid})
    browser.get("/all", {COOKIE: sid})
    assert len(db.saves) == saves


def test_oneLoadAndOneSavePerRequest(browser: Browser, db: ControlledDatabase) -> None:
    sid = login(browser)
    loads, saves = db.loads, len(db.saves)
    browser.get("/set/a/1", {COOKIE: sid})
    assert (db.loads - loads, len(db.saves) - saves) == (1, 1)
    assert db.saves[-1] == SessionChanges(updated={"a": '"1"'})


def test_changesAreSavedTogether(browser: Browser, sessions: Sessions) -> None:
    sid = login(browser)
    browser.get("/setint/n/5", {COOKIE: sid})
    browser.get("/delete/user", {COOKIE: sid})
    _, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body)["values"] == {"n": 5}
    browser.get("/clear", {COOKIE: sid})
    _, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body) == {"isNew": False, "values": {}}


def test_unknownIDIsNeverAdopted(browser: Browser, sessions: Sessions) -> None:
    planted = "A" * 43
    response, body = browser.get("/all", {COOKIE: planted})
    assert json.loads(body)["isNew"] is True
    assert setCookies(response) == []
    assert count(sessions) == 0
    response, _ = browser.get("/set/a/1", {COOKIE: planted})
    issued = cookieValue(response, COOKIE)
    assert issued != planted
    assert resultOf(sessions.database.load(storeKey(planted))) is None


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b" ",
        b"garbage",
        b"\xff\xfe" * 20,
        b"x" * 10_240,
        b'"' + b"A" * 43 + b'"',
        b"a/../b" * 5,
        b"A" * 42 + b"\x7f",
        b"A" * 43 + b"%0d%0a",
    ],
)
def test_badCookiesNeverReachTheDatabase(
    browser: Browser, db: ControlledDatabase, value: bytes
) -> None:
    headers = {b"Cookie": [b"sid=" + value]}
    response, body = browser.request("GET", "/all", headers=headers)
    assert response.code == 200
    assert json.loads(body)["isNew"] is True
    assert db.loads == 0
    response, _ = browser.request("GET", "/set/a/1", headers=headers)
    assert response.code == 200
    assert len(cookieValue(response, COOKIE)) == 43


def test_sessionIDsComeFromTheGenerator(clock: Any) -> None:
    issued = iter(["G" * 40, "H" * 40])
    sessions = Sessions(
        Config(cookie=COOKIE, sessionIDGenerator=lambda request: next(issued)),
        clock=clock,
    )
    browser = kvBrowser(sessions)
    response, _ = browser.get("/set/a/1")
    assert cookieValue(response, COOKIE) == "G" * 40


def test_aMalformedGeneratedIDIsA503AndNoCookie(clock: Any) -> None:
    sessions = Sessions(
        Config(cookie=COOKIE, sessionIDGenerator=lambda request: "short"), clock=clock
    )
    browser = kvBrowser(sessions)
    response, _ = browser.get("/set/a/1")
    assert response.code == 503
    assert setCookies(response) == []


def test_corruptStoredDataIsNoSession(browser: Browser, sessions: Sessions) -> None:
    sid = login(browser)
    db: Any = sessions.database
    db.memory.save(storeKey(sid), SessionChanges(updated={"user": "{not json"}))
    response, body = browser.get("/all", {COOKIE: sid})
    assert response.code == 200
    assert json.loads(body) == {"isNew": True, "values": {}}


def test_destroyForgetsTheSessionAndTheCookie(
    browser: Browser, sessions: Sessions, events: list[Any]
) -> None:
    sid = login(browser)
    response, _ = browser.get("/destroy", {COOKIE: sid})
    [header] = setCookies(response)
    assert header.startswith(f"{COOKIE}=; Path=/; Expires=Thu, 01 Jan 1970")
    assert count(sessions) == 0
    assert events == [(storeKey(sid), DestroyReason.destroyed)]
    response, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body) == {"isNew": True, "values": {}}


def test_destroyWithoutASessionDoesNothing(
    browser: Browser, sessions: Sessions, events: list[Any], db: ControlledDatabase
) -> None:
    response, _ = browser.get("/destroy")
    assert setCookies(response) == []
    assert events == []


def test_destroyWithAStaleCookieClearsIt(browser: Browser, events: list[Any]) -> None:
    response, _ = browser.get("/destroy", {COOKIE: "B" * 43})
    assert setCookies(response)[0].startswith(f"{COOKIE}=;")
    assert events == []


def test_destroyThenStartLeavesOneNewCookie(clock: Any, db: ControlledDatabase) -> None:
    sessions = Sessions(Config(cookie=COOKIE, allowReclaim=True), db, clock)
    events: list[Any] = []
    sessions.onDestroy(lambda *a: events.append(a))
    browser = kvBrowser(sessions)
    sid = login(browser)
    response, _ = browser.get("/reclaim", {COOKIE: sid})
    fresh = cookieValue(response, COOKIE)
    assert fresh != sid
    assert len(setCookies(response)) == 1
    _, body = browser.get("/all", {COOKIE: fresh})
    assert json.loads(body) == {"isNew": False, "values": {"fresh": True}}
    assert events == [(storeKey(sid), DestroyReason.destroyed)]
    assert resultOf(sessions.count()) == 1


def test_withoutAllowReclaimStartGivesTheDestroyedSession(
    sessions: Sessions, browser: Browser
) -> None:
    sid = login(browser)
    request = Request(DummyChannel())
    request.requestHeaders.setRawHeaders(b"cookie", [b"sid=" + sid.encode()])
    session = resultOf(sessions.start(request))
    resultOf(session.destroy())
    again = resultOf(sessions.start(request))
    assert again is session and again.destroyed
    response, _ = browser.get("/reclaim", {COOKIE: sid})
    assert response.code == 500


def test_expiry(
    browser: Browser, clock: Any, sessions: Sessions, events: list[Any]
) -> None:
    sid = login(browser)
    clock.advance(9.9)
    _, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body)["values"] == {"user": "alice"}
    clock.advance(0.1)
    _, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body) == {"isNew": True, "values": {}}
    assert events == [(storeKey(sid), DestroyReason.expired)]
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert len(events) == 1


def test_loadAtExpiryNeverReturnsTheSessionWhateverTheTimers(
    clock: Any, events: list[Any]
) -> None:
    class Stale(MemoryDatabase):
        """A database that forgets to check expiry on load."""

        def load(self, key: str) -> Any:
            from twisted.internet.defer import succeed

            from txsessions.interfaces import StoredSession

            if key not in self._fields:
                return succeed(None)
            return succeed(StoredSession(self._lifetime(key), self._fields[key]))

    sessions = Sessions(Config(cookie=COOKIE, expires=10), Stale(clock), clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    clock.rightNow = 10.0  # no timer has run
    _, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body)["isNew"] is True


def test_cookieCarriesTheLifetime(browser: Browser) -> None:
    response, _ = browser.get("/set/a/1")
    [header] = setCookies(response)
    assert "; Max-Age=10; " in header
    assert "; Expires=Thu, 01 Jan 1970 00:00:10 GMT; " in header


def test_noLifetimeMeansABrowserSessionCookieAndNoTimer(clock: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE), clock=clock)
    browser = kvBrowser(sessions)
    response, _ = browser.get("/set/a/1")
    [header] = setCookies(response)
    assert "Max-Age" not in header and "Expires" not in header
    assert clock.getDelayedCalls() == []


def test_destroyByIDAndByKey(
    browser: Browser, sessions: Sessions, events: list[Any]
) -> None:
    first, second = login(browser), login(browser)
    assert resultOf(sessions.destroyByID(first)) is True
    assert resultOf(sessions.destroyByID(first)) is False
    assert resultOf(sessions.destroyByID("not an id")) is False
    assert resultOf(sessions.destroyByKey(storeKey(second))) is True
    assert events == [
        (storeKey(first), DestroyReason.destroyByID),
        (storeKey(second), DestroyReason.destroyByID),
    ]
    _, body = browser.get("/all", {COOKIE: first})
    assert json.loads(body)["isNew"] is True


def test_destroyAll(browser: Browser, sessions: Sessions, events: list[Any]) -> None:
    for _ in range(3):
        login(browser)
    assert count(sessions) == 3
    assert resultOf(sessions.destroyAll()) == 3
    assert count(sessions) == 0
    assert [reason for _, reason in events] == [DestroyReason.destroyAll] * 3


def test_failingListenerIsLoggedAndOthersRun(
    browser: Browser, sessions: Sessions
) -> None:
    seen: list[str] = []

    def bad(key: str, reason: DestroyReason) -> None:
        raise RuntimeError("listener bug")

    sessions.onDestroy(bad)
    sessions.onDestroy(lambda key, reason: seen.append(key))
    sid = login(browser)
    resultOf(sessions.destroyByID(sid))
    assert seen == [storeKey(sid)]


def test_listenerMayCallBackIntoTheManager(
    browser: Browser, sessions: Sessions
) -> None:
    counts: list[int] = []
    sessions.onDestroy(lambda key, reason: counts.append(resultOf(sessions.count())))
    first, _ = login(browser), login(browser)
    resultOf(sessions.destroyByID(first))
    assert counts == [1]


def test_useDatabase(browser: Browser, sessions: Sessions, clock: Any) -> None:
    old = sessions.database
    sid = login(browser)
    new = MemoryDatabase(clock)
    sessions.useDatabase(new)
    assert sessions.database is new
    _, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body)["isNew"] is True
    events: list[Any] = []
    sessions.onDestroy(lambda *a: events.append(a))
    resultOf(old.destroyAll(DestroyReason.destroyAll))
    assert events == []


def test_startTwiceGivesOneSession(sessions: Sessions, db: ControlledDatabase) -> None:
    request = Request(DummyChannel())
    request.requestHeaders.setRawHeaders(b"cookie", [b"sid=" + b"C" * 43])
    db.holdLoads = True
    first, second = sessions.start(request), sessions.start(request)
    assert db.loads == 1
    db.release()
    assert resultOf(first) is resultOf(second) is get(request)


def test_startFailsForEveryWaiterWhenTheLoadFails(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    from txsessions import DatabaseError

    request = Request(DummyChannel())
    request.requestHeaders.setRawHeaders(b"cookie", [b"sid=" + b"C" * 43])
    db.failLoads = True
    first, second = sessions.start(request), sessions.start(request)
    for d in (first, second):
        with pytest.raises(DatabaseError, match="OSError: the store is down"):
            resultOf(d)
    with pytest.raises(NoSessionError):
        get(request)


def test_getWithoutASession() -> None:
    with pytest.raises(NoSessionError, match="Sessions.wrap"):
        get(Request(DummyChannel()))


def test_oneManagerPerRequest(sessions: Sessions, clock: Any) -> None:
    request = Request(DummyChannel())
    sessions.start(request)
    with pytest.raises(SessionError, match="another Sessions manager"):
        Sessions(clock=clock).start(request)


def test_closeStopsTheTimers(browser: Browser, sessions: Sessions, clock: Any) -> None:
    login(browser)
    assert clock.getDelayedCalls() != []
    resultOf(sessions.close())
    assert clock.getDelayedCalls() == []


def test_defaultsToTheGlobalReactor() -> None:
    from twisted.internet import reactor

    sessions = Sessions()
    assert sessions.parts.clock is reactor
    assert isinstance(sessions.database, MemoryDatabase)


def test_aSaveNeverResurrectsASessionDestroyedMeanwhile(
    browser: Browser, sessions: Sessions, db: ControlledDatabase
) -> None:
    from treq.testing import StubTreq

    sid = login(browser)
    db.holdSaves = True
    stub: Any = StubTreq(sessions.wrap(kvApp(sessions).resource()))
    d = stub.get("http://example.com/remember/600", cookies={COOKIE: sid})
    stub.flush()
    assert resultOf(sessions.destroyByID(sid)) is True
    db.release()
    stub.flush()
    response = resultOf(d)
    # Issue 17: the lost write is a 409 Conflict, never a silent 200.
    assert response.code == 409
    assert setCookies(response) == []
    assert count(sessions) == 0
    _, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body)["isNew"] is True


def test_cookieOptionsPerCall(sessions: Sessions, clock: Any) -> None:
    from klein import Klein

    app = Klein()

    @app.route("/admin")
    async def admin(request: Any) -> str:
        session = await sessions.start(
            request, cookiePath="/admin", cookieSameSite="strict"
        )
        session.set("admin", True)
        return "ok"

    response, _ = Browser(app.resource()).get("/admin")
    [header] = setCookies(response)
    assert "; Path=/admin; " in header and header.endswith("SameSite=Strict")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"cookie": "other"}, TypeError),
        ({"expires": 5}, TypeError),
        ({"cookiePath": "nope"}, ValueError),
        ({"cookieSameSite": "LAX"}, ValueError),
    ],
)
def test_badCookieOptions(
    sessions: Sessions, options: dict[str, Any], error: type
) -> None:
    with pytest.raises(error):
        sessions.start(Request(DummyChannel()), **options)


def test_cookieDomainSharesWithSubdomains(clock: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE, cookieDomain="example.com"), clock=clock)
    browser = kvBrowser(sessions)
    response, _ = browser.get("/set/a/1")
    sid = cookieValue(response, COOKIE)
    assert "; Path=/; Domain=example.com; " in setCookies(response)[0]
    response, _ = browser.get("/destroy", {COOKIE: sid})
    assert (
        "; Path=/; Domain=example.com; Expires=Thu, 01 Jan 1970"
        in setCookies(response)[0]
    )


def test_subdomainSettingsAreChecked() -> None:
    assert Config(cookieDomain="example.com").disableSubdomainPersistence is False
    assert Config().disableSubdomainPersistence is True
    with pytest.raises(ValueError, match="needs cookieDomain"):
        Config(disableSubdomainPersistence=False)
    with pytest.raises(ValueError, match="not a DNS name"):
        Config(cookieDomain="example.com; Secure")


def test_disableSubdomainPersistenceKeepsADomainCookieHostOnly(clock: Any) -> None:
    # Issue 16: it accepted only the value it would derive anyway.
    config = Config(
        cookie=COOKIE, cookieDomain="example.com", disableSubdomainPersistence=True
    )
    browser = kvBrowser(Sessions(config, clock=clock))
    response, _ = browser.get("/set/a/1")
    assert "Domain=" not in setCookies(response)[0]
    assert "; Path=/; " in setCookies(response)[0]


def test_cookieSecureTLSOff(clock: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE, cookieSecureTLS=False), clock=clock)
    browser = kvBrowser(sessions, "https://example.com")
    response, _ = browser.get("/set/a/1")
    assert "Secure" not in setCookies(response)[0]


class Reversing:
    """
    A toy encoding: the id reversed behind a prefix; anything else is refused.
    """

    def encode(self, cookieName: str, value: str) -> str:
        return f"{cookieName}.{value[::-1]}"

    def decode(self, cookieName: str, value: str) -> str:
        prefix, _, body = value.partition(".")
        if prefix != cookieName:
            raise ValueError("not ours")
        return body[::-1]


def test_encodingWrapsTheIDInTheCookie(clock: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE, encoding=Reversing()), clock=clock)
    browser = kvBrowser(sessions)
    response, _ = browser.get("/set/a/1")
    value = cookieValue(response, COOKIE)
    assert value.startswith("sid.")
    sid = value[4:][::-1]
    assert resultOf(sessions.database.load(storeKey(sid))) is not None
    assert json.loads(browser.get("/all", {COOKIE: value})[1])["isNew"] is False
    assert json.loads(browser.get("/all", {COOKIE: sid})[1])["isNew"] is True


def test_encodingMustHaveBothMethods() -> None:
    with pytest.raises(ValueError, match="encoding needs"):
        Config(encoding=object())  # type: ignore[arg-type]


def test_incrementAndDecrementOverHTTP(browser: Browser, sessions: Sessions) -> None:
    response, body = browser.get("/incr/n/5")
    assert body == b"5"
    sid = cookieValue(response, COOKIE)
    assert browser.get("/incr/n/2", {COOKIE: sid})[1] == b"7"
    assert browser.get("/decr/n", {COOKIE: sid})[1] == b"6"
    assert browser.get("/incr/n/-10", {COOKIE: sid})[1] == b"-4"
    assert json.loads(browser.get("/all", {COOKIE: sid})[1])["values"] == {"n": -4}


def test_incrementOfAStringCountsFromZero(browser: Browser) -> None:
    sid = login(browser)
    assert browser.get("/incr/user/3", {COOKIE: sid})[1] == b"3"


def test_incrementSavesPendingChangesInTheSameRoundTrip(
    browser: Browser, db: ControlledDatabase
) -> None:
    sid = login(browser)
    saves = len(db.saves)
    browser.get("/incr/n/1", {COOKIE: sid})
    assert len(db.saves) == saves + 1


def test_getAfterDestroyGivesTheDestroyedSession(
    sessions: Sessions, browser: Browser
) -> None:
    # Iris's sessions.Get returns nil after the manager's Destroy.
    sid = login(browser)
    request = Request(DummyChannel())
    request.requestHeaders.setRawHeaders(b"cookie", [b"sid=" + sid.encode()])
    resultOf(sessions.destroy(request))
    assert get(request).destroyed


def test_destroyByIDReachesSessionsThisManagerNeverSaw(
    sessions: Sessions, browser: Browser, clock: Any, db: ControlledDatabase
) -> None:
    # Iris's DestroyByID only reaches sessions in this process's memory.
    sid = login(browser)
    other = Sessions(Config(cookie=COOKIE), db, clock)
    assert resultOf(other.destroyByID(sid)) is True
    assert json.loads(browser.get("/all", {COOKIE: sid})[1])["isNew"] is True


@pytest.mark.parametrize("bad", [b"alice", 42, None])
def test_whatNamesASessionOrOwnerIsText(bad: Any) -> None:
    """
    An owner, an id or a store key that is not a C{str} (bytes from
    C{request.args}, an integer user id) is refused at the call: it would
    name nothing on one database, and something on another.
    """
    sessions = Sessions(Config(), MemoryDatabase(Clock()), Clock())
    calls: list[Any] = [
        lambda: sessions.destroyOwner(bad),
        lambda: sessions.sessionsOf(bad),
        lambda: sessions.destroyByKey(bad),
        lambda: sessions.destroyByID(bad),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="must be a str"):
            call()


@pytest.mark.parametrize("route", ["/destroy", "/regenerate"])
def test_aDatabaseMethodThatRaisesIsAStoreFailure(clock: Any, route: str) -> None:
    """
    A database whose C{destroy} or C{rename} raises, rather than failing
    the L{Deferred} it returns, fails as one that fails it: a 503 with no
    cookie, counted as a store error; the session is left as it was.
    (Before, it was a 500, not counted, and a destroy sent the deletion
    cookie of a session still stored.)
    """

    class Raising(MemoryDatabase):
        def destroy(self, key: str, reason: DestroyReason) -> Any:
            raise OSError("the disk went away")

        def rename(self, oldKey: str, newKey: str) -> Any:
            raise OSError("the disk went away")

    sessions = Sessions(Config(cookie=COOKIE), Raising(clock), clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    response, _ = browser.get(route, {COOKIE: sid})
    assert response.code == 503
    assert setCookies(response) == []
    assert sessions.metrics.storeErrors == 1
    response, body = browser.get("/get/user", {COOKIE: sid})
    assert body == b'"alice"'


def test_sessionsNamesAnArgumentOfTheWrongKind() -> None:
    """
    C{Sessions(MemoryDatabase())} or C{Sessions(Config(), "memory:")} says
    which argument is wrong, rather than failing on an attribute later.
    """
    with pytest.raises(TypeError, match="config must be a Config"):
        Sessions(MemoryDatabase(Clock()))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="openDatabase"):
        Sessions(Config(), "memory:")  # type: ignore[arg-type]


@pytest.mark.parametrize("later", [False, True], ids=["at once", "later"])
def test_aLoadAnsweringWhatNoDatabaseMayIsA503(clock: Any, later: bool) -> None:
    """
    A database whose C{load} answers neither a L{StoredSession} nor C{None}
    gets its request a 503, no cookie, and an error naming the database
    and what it answered; before, a bare C{AssertionError} and a 500.
    """
    from twisted.internet.defer import Deferred, succeed

    waiting: list[Deferred[Any]] = []

    class Wrong(MemoryDatabase):
        def load(self, key: str) -> Any:
            if not later:
                return succeed({"user": '"alice"'})
            waiting.append(Deferred())
            return waiting[-1]

    sessions = Sessions(Config(cookie=COOKIE), Wrong(clock), clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    pending = browser.start("/get/user", {COOKIE: sid})
    for d in waiting:
        d.callback({"user": '"alice"'})
    pending.flush()
    [response] = pending.fired
    assert response.code == 503
    assert setCookies(response) == []
    assert sessions.metrics.storeErrors == 1


def test_aLoadAnsweringATupleIsA503(clock: Any) -> None:
    """
    A third-party C{load} answering a tuple is refused like any answer
    that is no L{StoredSession}: it had been taken for the parts the
    databases' own C{loadParts} answers, and its fields served as a session.
    """
    from twisted.internet.defer import succeed

    class Tuple(MemoryDatabase):
        def load(self, key: str) -> Any:
            return succeed((0.0, None, {"user": '"mallory"'}))

    sessions = Sessions(Config(cookie=COOKIE), Tuple(clock), clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    response, body = browser.get("/get/user", {COOKIE: sid})
    assert response.code == 503
    assert b"mallory" not in body
    assert sessions.metrics.storeErrors == 1


def test_useDatabaseRefusesWhatIsNoDatabase(clock: Any) -> None:
    """
    C{useDatabase("memory:")} is refused before anything changes: the
    manager keeps its database and its listener.
    """
    database = MemoryDatabase(clock)
    sessions = Sessions(Config(), database, clock)
    with pytest.raises(TypeError, match="openDatabase"):
        sessions.useDatabase("memory:")  # type: ignore[arg-type]
    assert sessions.database is database


def test_destroyOwnerCountsADatabaseMethodThatRaises(clock: Any) -> None:
    """
    A database whose C{sessionsOf} raises fails C{destroyOwner} with a
    L{DatabaseError}, counted as a store error, as C{sessionsOf} does.
    """
    from txsessions import DatabaseError

    class Raising(MemoryDatabase):
        def sessionsOf(self, owner: str) -> Any:
            raise OSError("the disk went away")

    sessions = Sessions(Config(), Raising(clock), clock)
    failures: list[Any] = []
    sessions.destroyOwner("alice").addErrback(failures.append)
    [failure] = failures
    assert failure.check(DatabaseError)
    assert sessions.metrics.storeErrors == 1


def test_wrapAndWithSessionRefuseWhatTheyCannotServe(clock: Any) -> None:
    """
    C{wrap} takes a resource and C{withSession} a handler, and say so at
    once: C{wrap(app)} (a Klein app rather than its C{resource()}) or
    C{withSession(None)} had failed on every request instead, each a 500.
    """
    from klein import Klein

    sessions = Sessions(Config(), MemoryDatabase(clock), clock)
    with pytest.raises(TypeError, match=r"resource \(for a Klein app, app\.resource"):
        sessions.wrap(Klein())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes a resource, not NoneType"):
        sessions.wrap(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="route handler, not NoneType"):
        sessions.withSession(None)  # type: ignore[arg-type]
    assert sessions.wrap(Klein().resource()) is not None


def test_wrapServesAResourceThatDoesNotDeclareIResource(clock: Any) -> None:
    """
    A resource that has C{render} and C{getChildWithDefault} but does not
    declare C{IResource}, which Twisted's C{Site} serves, is wrapped too
    (helper-38: the check above had refused it).
    """
    from tests import support

    class Duck:
        isLeaf = True

        def getChildWithDefault(self, path: bytes, request: Any) -> Any:
            return self

        def render(self, request: Any) -> bytes:
            get(request).set("duck", True)
            return b"quack"

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    out = support.rawHTTP(sessions.wrap(Duck()), support.get()).value()  # type: ignore[arg-type]
    assert out.startswith(b"HTTP/1.1 200")
    assert b"Set-Cookie: " + COOKIE.encode() + b"=" in out
    assert out.endswith(b"\r\n\r\nquack")


def test_methodsTakingARequestRefuseWhatIsNone(clock: Any) -> None:
    """
    C{start}, C{destroy}, C{updateExpiration} and C{shiftExpiration} given
    no request (a L{Session}, say), or a request another manager started,
    raise at the call: all but C{start} had returned a failing Deferred,
    a 500 for a handler that returned it.
    """
    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    other = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    request = Request(DummyChannel(), False)
    resultOf(other.start(request))
    calls: list[Callable[[Any], object]] = [
        sessions.start,
        sessions.destroy,
        sessions.shiftExpiration,
        lambda r: sessions.updateExpiration(r, 60),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="expected the request"):
            call(object())
        with pytest.raises(SessionError, match="another Sessions manager"):
            call(request)


def test_keepAndCurrentMustBeARequestWithASession(clock: Any) -> None:
    """
    C{destroyOwner(keep=...)} and C{sessionsOf(current=...)} refuse what is
    no request, or a request whose session was never started: given the
    L{Session} rather than its request, "log out the others" had logged
    this device out too (helper-38).
    """
    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    request = Request(DummyChannel(), False)
    session = resultOf(sessions.start(request))
    for wrong in (session, b"x"):
        with pytest.raises(TypeError, match="expected the request"):
            sessions.destroyOwner("alice", keep=wrong)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected the request"):
            sessions.sessionsOf("alice", current=wrong)  # type: ignore[arg-type]
    unstarted = Request(DummyChannel(), False)
    with pytest.raises(ValueError, match="keep must be a request whose session"):
        sessions.destroyOwner("alice", keep=unstarted)
    with pytest.raises(ValueError, match="current must be a request whose session"):
        sessions.sessionsOf("alice", current=unstarted)
    assert resultOf(sessions.destroyOwner("alice", keep=request)) == 0
