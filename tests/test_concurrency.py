"""
Requests racing on one session (issue 17): parallel regenerations, and a
write made while another request regenerates or destroys the session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from klein import Klein
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, gatherResults
from twisted.web.iweb import IRequest

import txsessions
from tests.apps import kvApp, kvBrowser
from tests.db.test_conformance import DATABASES, databaseURL
from tests.support import (
    COOKIE,
    Browser,
    ControlledDatabase,
    InPartsDatabase,
    cookieValue,
    login,
    resultOf,
    setCookies,
)
from txsessions import Config, Sessions
from txsessions.db import openDatabase
from txsessions.errors import SessionError


def loginApp(sessions: Sessions) -> Klein:
    """
    A login route as a double-clicked button runs it: regenerate, then
    write.
    """
    app = kvApp(sessions)

    @app.route("/login/<name>")
    async def login(request: IRequest, name: str) -> str:
        session = txsessions.get(request)
        await session.regenerate()
        session.set("user", name)
        return "welcome"

    return app


@pytest.mark.parametrize("kind", DATABASES)
@pytest_twisted.ensureDeferred
async def test_parallelRegenerationsAllAnswerWithAWorkingSession(
    kind: str, tmp_path: Any, listen: Any, request: Any
) -> None:
    sessions = Sessions(
        Config(cookie=COOKIE), openDatabase(databaseURL(kind, tmp_path, request))
    )
    try:
        base, client = listen(sessions.wrap(loginApp(sessions).resource()))
        response = await client.get(base + "/set/cart/3")
        await response.content()
        old = cookieValue(response, COOKIE)

        async def loginOnce(i: int) -> tuple[int, str]:
            response = await client.get(f"{base}/login/u{i}", cookies={COOKIE: old})
            await response.content()
            return response.code, cookieValue(response, COOKIE)

        answers = await gatherResults(
            [Deferred.fromCoroutine(loginOnce(i)) for i in range(20)]
        )
        assert [code for code, _ in answers] == [200] * 20
        for i, (_, sid) in enumerate(answers):
            assert sid != old
            response = await client.get(base + "/all", cookies={COOKIE: sid})
            assert response.code == 200
            values = (await response.json())["values"]
            # The winner keeps the data; a loser carries on with a new
            # session holding what it wrote.
            assert values["user"] == f"u{i}"
            assert values.get("cart", "3") == "3"
        response = await client.get(base + "/all", cookies={COOKIE: old})
        assert (await response.json())["isNew"] is True
    finally:
        await sessions.close()


def test_aWriteAfterAnotherRequestRegeneratedIsA409(
    browser: Browser, sessions: Sessions, db: ControlledDatabase
) -> None:
    _aWriteAfterAnotherRequestRegeneratedIsA409(browser, db)


def test_aDatabaseThatSavesInPartsIsSavedThatWay(clock: Any) -> None:
    """
    A database offering C{saveParts} (Redis) is saved through it: a new
    session, a change, an increment; and a save it refuses (the session was
    regenerated meanwhile) is a 409, as through C{save}.
    """
    db = InPartsDatabase(clock)
    browser = kvBrowser(Sessions(Config(cookie=COOKIE, expires=10), db, clock))
    sid = login(browser)
    assert browser.get("/incr/n/5", {COOKIE: sid})[1] == b"5"
    assert browser.get("/get/n", {COOKIE: sid})[1] == b"5"
    assert (db.partSaves, len(db.saves)) == (2, 2)
    _aWriteAfterAnotherRequestRegeneratedIsA409(browser, db)
    assert db.partSaves == len(db.saves) > 2


def _aWriteAfterAnotherRequestRegeneratedIsA409(
    browser: Browser, db: ControlledDatabase
) -> None:
    sid = login(browser)
    db.holdSaves = True
    writing = browser.start("/set/a/1", {COOKIE: sid})
    db.holdSaves = False
    response, _ = browser.get("/regenerate", {COOKIE: sid})
    newID = cookieValue(response, COOKIE)
    db.release()
    writing.flush()
    [response] = writing.fired
    assert response.code == 409
    assert setCookies(response) == []
    assert b"another request" in resultOf(response.content())
    _, body = browser.get("/get/a", {COOKIE: newID})
    assert body == b"null"


@pytest.mark.parametrize("kind", DATABASES)
@pytest_twisted.ensureDeferred
async def test_aRecordThatCannotBeDecodedIsANewSession(
    kind: str, tmp_path: Any, listen: Any, request: Any
) -> None:
    # Issue 17: a value nested too deep to decode (RecursionError) made
    # every request with that cookie, logout included, answer 500.
    from twisted.internet import reactor

    from txsessions.ids import storeKey
    from txsessions.interfaces import Lifetime, SessionChanges

    database = openDatabase(databaseURL(kind, tmp_path, request))
    sessions = Sessions(Config(cookie=COOKIE), database)
    try:
        base, client = listen(sessions.wrap(kvApp(sessions).resource()))
        sid = "p" * 43
        deep = "[" * 100_000 + "]" * 100_000
        changes = SessionChanges(
            create=True,
            lifetime=Lifetime(reactor.seconds()),
            updated={"user": '"alice"', "deep": deep},
        )
        await database.save(storeKey(sid), changes)
        for path in ["/all", "/destroy", "/set/a/1"]:
            response = await client.get(base + path, cookies={COOKIE: sid})
            await response.content()
            assert response.code == 200, path
        assert cookieValue(response, COOKIE) != sid
    finally:
        await sessions.close()


def gatedApp(sessions: Sessions, gate: list[Deferred[None]]) -> Klein:
    """
    Routes that wait for the test, then increment without catching
    anything: C{/wrapped} reads its session with L{txsessions.get} (to be
    served under C{wrap}), C{/decorated} is a C{withSession} route; and
    C{/caught} (under C{wrap}) catches the conflict, then writes to the
    session it ended.
    """
    app = Klein()

    @app.route("/wrapped")
    async def wrapped(request: IRequest) -> str:
        session = txsessions.get(request)
        await gate[0]
        return str(await session.increment("n"))

    @app.route("/caught")
    async def caught(request: IRequest) -> str:
        session = txsessions.get(request)
        await gate[0]
        try:
            await session.increment("n")
        except txsessions.SessionConflictError:
            pass
        session.set("a", "1")  # SessionDestroyedError: the conflict ended it
        return "unreachable"

    @app.route("/decorated")
    @sessions.withSession
    async def decorated(request: IRequest, session: txsessions.Session) -> str:
        await gate[0]
        return str(await session.increment("n"))

    return app


@pytest.mark.parametrize("meanwhile", ["/destroy", "/regenerate"])
@pytest.mark.parametrize("route", ["/wrapped", "/decorated", "/caught"])
def test_aConflictEscapingTheHandlerIsA409(
    browser: Browser, sessions: Sessions, route: str, meanwhile: str
) -> None:
    # The handler does not catch the SessionConflictError its increment
    # raises (or the SessionDestroyedError of writing after it): Klein
    # turned it into a 500 "Processing Failed".
    sid = login(browser)
    gate: list[Deferred[None]] = [Deferred()]
    app = gatedApp(sessions, gate)
    resource = app.resource()
    stub: Any = StubTreq(resource if route == "/decorated" else sessions.wrap(resource))
    answering = stub.get("http://example.com" + route, cookies={COOKIE: sid})
    stub.flush()
    browser.get(meanwhile, {COOKIE: sid})
    gate[0].callback(None)
    stub.flush()
    response = resultOf(answering)
    assert response.code == 409
    assert setCookies(response) == []
    assert b"another request" in resultOf(response.content())


@pytest.mark.parametrize("own", ["idle", "lastSeen"])
def test_aReadDuringALoginInAnotherTabKeepsTheLogin(own: str) -> None:
    """
    A read-only request that loaded the session before another tab logged
    in (regenerating it) finds the old id gone when it saves what the
    session wrote itself on loading (its idle lifetime pushed back, or its
    owner's last-seen time).  It answers without touching the client's
    cookie, which now names the new session: before the fix it sent a
    deletion, and the user was logged out.
    """
    from twisted.internet.task import deferLater

    from txsessions.testing import SessionsKit

    config = (
        Config(cookie=COOKIE, idleTimeout=600)
        if own == "idle"
        else Config(cookie=COOKIE, lastSeenInterval=60)
    )
    kit = SessionsKit(config)
    app = Klein()
    sessions = kit.sessions

    @app.route("/login")
    @sessions.withSession
    async def login(request: IRequest, session: txsessions.Session) -> str:
        await session.regenerate()
        session.setOwner("alice")
        return "welcome"

    @app.route("/slow")
    @sessions.withSession
    async def slow(request: IRequest, session: txsessions.Session) -> str:
        await deferLater(kit.clock, 1, lambda: None)
        return session.owner or "nobody"

    @app.route("/whoami")
    @sessions.withSession
    def whoami(request: IRequest, session: txsessions.Session) -> str:
        return session.owner or "nobody"

    browser = kit.browser(app)
    assert browser.get("/login").text == "welcome"
    kit.advance(100)  # the next load pushes back the idle end, or notes last-seen
    reading = browser.send("GET", "/slow")
    assert browser.get("/login").text == "welcome"  # tab 2: a new id
    kit.advance(1)
    answered = kit.result(reading)
    assert answered.code == 200
    assert answered.setCookies == []
    assert browser.get("/whoami").text == "alice"


def test_aFailureAfterARegenerateKeepsTheSession(clock: Any) -> None:
    """
    A handler that regenerates its session and then fails (a 500) has moved
    the session to its new id already: the 500 carries that id's cookie
    (and nothing else of the request is saved), so the user keeps the
    session rather than being logged out and leaving it stored under an id
    nobody holds.
    """
    from txsessions.db.memory import MemoryDatabase

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    app = kvApp(sessions)

    @app.route("/regenerate-then-fail")
    async def regenerateThenFail(request: IRequest) -> str:
        session = txsessions.get(request)
        await session.regenerate()
        session.set("lost", "yes")
        raise RuntimeError("the handler failed after regenerating")

    browser = Browser(sessions.wrap(app.resource()))
    old = login(browser)
    response, _ = browser.get("/regenerate-then-fail", {COOKIE: old})
    assert response.code == 500
    new = cookieValue(response, COOKIE)
    assert new != old
    response, body = browser.get("/all", {COOKIE: new})
    assert json.loads(body)["values"] == {"user": "alice"}
    response, body = browser.get("/all", {COOKIE: old})
    assert json.loads(body)["values"] == {}
    counted: list[int] = []
    sessions.count().addCallback(counted.append)
    assert counted == [1]


def test_aRegenerateAfterTheHeadersIsRefused(clock: Any) -> None:
    """
    C{regenerate()} once the response headers are sent raises
    L{SessionError}, and the session keeps its id: it had moved the
    session to a new id whose cookie could not be sent, so the client was
    logged out and the session left under an id nobody held (helper-38).
    """
    from txsessions.db.memory import MemoryDatabase
    from txsessions.errors import SessionError

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    app = kvApp(sessions)
    refused: list[str] = []

    @app.route("/stream-then-regenerate")
    async def streamThenRegenerate(request: IRequest) -> str:
        session = txsessions.get(request)
        request.write(b"streaming;")
        try:
            await session.regenerate()
        except SessionError as e:
            refused.append(str(e))
        return "done"

    browser = Browser(sessions.wrap(app.resource()))
    old = login(browser)
    response, body = browser.get("/stream-then-regenerate", {COOKIE: old})
    assert (response.code, body) == (200, b"streaming;done")
    assert refused == ["no regenerate once the response headers are sent"]
    response, body = browser.get("/all", {COOKIE: old})
    assert json.loads(body)["values"] == {"user": "alice"}


def test_aChangeAfterTheResponseFinishedIsRefused(clock: Any) -> None:
    """
    Once the response has finished, a change to its session raises
    L{SessionError} (reads still work): before the fix, C{set},
    C{setOwner} and C{updateExpiration} were silently never saved
    (helper-38).  An increment, a save of its own, still counts (a
    download counted when it completes), and a destroy still ends it.
    """
    from txsessions.db.memory import MemoryDatabase
    from txsessions.errors import SessionError

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    app = kvApp(sessions)
    kept: list[Any] = []

    @app.route("/keep")
    def keep(request: IRequest) -> str:
        session = txsessions.get(request)
        session.set("during", 1)
        kept.append(session)
        return "kept"

    browser = Browser(sessions.wrap(app.resource()))
    old = login(browser)
    response, body = browser.get("/keep", {COOKIE: old})
    assert (response.code, body) == (200, b"kept")
    [session] = kept
    assert session.get("during") == 1 and not session.destroyed
    changes: list[Callable[[], object]] = [
        lambda: session.set("after", 1),
        lambda: session.delete("during"),
        lambda: session.setOwner("bob"),
        lambda: session.setFlash("note", "hi"),
    ]
    for change in changes:
        with pytest.raises(SessionError, match="response has finished"):
            change()
    assert resultOf(session.increment("downloads")) == 1
    response, body = browser.get("/all", {COOKIE: old})
    assert json.loads(body)["values"] == {"user": "alice", "during": 1, "downloads": 1}
    resultOf(session.destroy())
    assert session.destroyed
    response, body = browser.get("/all", {COOKIE: old})
    assert json.loads(body)["values"] == {}


@pytest.mark.parametrize("cookie", [True, False], ids=["cookie", "no cookie"])
def test_aSessionStartedAfterTheResponseFinishedTakesNoChanges(
    clock: Any, cookie: bool
) -> None:
    """
    A session first started once its response has finished (in a
    C{notifyFinish} callback of a route that did not use it) refuses
    changes as any session does once its response has finished, rather
    than taking them and never saving them; an increment, a save of its
    own, still counts for a stored session, and is refused for a new one,
    which could no longer be given its cookie.
    """
    from txsessions.db.memory import MemoryDatabase

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    app = kvApp(sessions)
    outcomes: list[str] = []

    @app.route("/later")
    def later(request: IRequest) -> str:
        def finished(_: object) -> None:
            session = resultOf(sessions.start(request))
            try:
                session.set("after", 1)
                outcomes.append("set taken")
            except SessionError:
                outcomes.append("set refused")
            try:
                counted = resultOf(session.increment("hits"))
                outcomes.append(f"hits {counted}")
            except SessionError:
                outcomes.append("increment refused")

        request.notifyFinish().addCallback(finished)  # type: ignore[attr-defined]
        return "later"

    browser = Browser(app.resource())
    old = login(Browser(sessions.wrap(app.resource())))
    response, body = browser.get("/later", {COOKIE: old} if cookie else {})
    assert (response.code, body) == (200, b"later")
    assert outcomes == (
        ["set refused", "hits 1"] if cookie else ["set refused", "increment refused"]
    )
    response, body = Browser(sessions.wrap(app.resource())).get("/all", {COOKIE: old})
    expected = {"user": "alice", "hits": 1} if cookie else {"user": "alice"}
    assert json.loads(body)["values"] == expected


@pytest.mark.parametrize("wrapped", [True, False], ids=["wrap", "withSession"])
def test_whenTheResponseFinishesTheSessionTakesOnlyIncrements(
    clock: Any, wrapped: bool
) -> None:
    """
    In a C{notifyFinish} callback, a handler's C{set} raises and its
    C{increment} counts, whether the route is wrapped or decorated and
    returns its body whole (helper-39: the decorated route had taken the
    C{set} and never saved it).
    """
    from txsessions.db.memory import MemoryDatabase

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    app = kvApp(sessions)
    outcomes: list[str] = []

    def whenFinished(request: IRequest, *_: Any) -> str:
        session = txsessions.get(request)
        session.set("seen", True)

        def finished(_: object) -> None:
            try:
                session.set("after", 1)
                outcomes.append("set taken")
            except SessionError:
                outcomes.append("set refused")
            session.increment("hits").addCallback(
                lambda n: outcomes.append(f"hits {n}")
            )

        request.notifyFinish().addCallback(finished)  # type: ignore[attr-defined]
        return "ok"

    if wrapped:
        app.route("/finish")(whenFinished)
        resource = sessions.wrap(app.resource())
    else:
        app.route("/finish")(sessions.withSession(whenFinished))
        resource = app.resource()
    browser = Browser(resource)
    sid = login(browser) if wrapped else None
    cookies = {COOKIE: sid} if sid else {}
    for _ in range(2):
        response, body = browser.get("/finish", cookies)
        assert (response.code, body) == (200, b"ok")
        cookies = cookies or {COOKIE: cookieValue(response, COOKIE)}
    assert outcomes == ["set refused", "hits 1", "set refused", "hits 2"]


def test_anIncrementAfterA500SavesNothingElse(clock: Any) -> None:
    """
    A response that fails with a 5xx saves nothing of what its handler set,
    and an increment once it has finished does not either: it had saved
    them with the count (helper-40).
    """
    from txsessions.db.memory import MemoryDatabase

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(clock), clock)
    app = kvApp(sessions)

    @app.route("/fail")
    def fail(request: IRequest) -> str:
        session = txsessions.get(request)
        session.set("half-done", True)
        request.notifyFinish().addCallback(  # type: ignore[attr-defined]
            lambda _: session.increment("errors")
        )
        request.setResponseCode(500)
        return "oops"

    browser = Browser(sessions.wrap(app.resource()))
    sid = login(browser)
    response, body = browser.get("/fail", {COOKIE: sid})
    assert response.code == 500
    response, body = browser.get("/all", {COOKIE: sid})
    assert json.loads(body)["values"] == {"user": "alice", "errors": 1}


@pytest.mark.parametrize("kind", DATABASES)
@pytest_twisted.ensureDeferred
async def test_aRefusedCounterIsA503ButNoStoreError(
    kind: str, tmp_path: Any, listen: Any, request: Any
) -> None:
    """
    A counter that would leave the 64-bit integers fails its increment with
    L{CounterRangeError}, and the response is a 503 whether the handler
    catches it or not (what the request changed with it was not saved),
    but it is not counted as a store error: it had been (helper-39).
    """
    from txsessions.errors import CounterRangeError

    database = openDatabase(databaseURL(kind, tmp_path, request))
    sessions = Sessions(Config(cookie=COOKIE), database)
    app = kvApp(sessions)
    caught: list[str] = []

    @app.route("/full")
    async def full(request: IRequest) -> str:
        session = txsessions.get(request)
        session.set("cart", "paid")
        try:
            await session.increment("n")
        except CounterRangeError as e:
            caught.append(str(e))
        return "ok"

    try:
        base, client = listen(sessions.wrap(app.resource()))
        response = await client.get(base + f"/setint/n/{2**63 - 1}")
        await response.content()
        cookie = {COOKIE: cookieValue(response, COOKIE)}
        response = await client.get(base + "/full", cookies=cookie)
        await response.content()
        assert response.code == 503
        assert len(caught) == 1 and "64-bit" in caught[0]
        response = await client.get(base + "/all", cookies=cookie)
        assert json.loads(await response.text())["values"] == {"n": 2**63 - 1}
        assert sessions.metrics.storeErrors == 0
    finally:
        await database.close()
