from __future__ import annotations

import json
from typing import Any

import pytest
import pytest_twisted
from klein import Klein
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.web.client import ResponseFailed
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.static import Data

import txsessions
from tests.apps import kvApp, kvBrowser, servedAndWritten
from tests.support import (
    COOKIE,
    Browser,
    ControlledDatabase,
    InPartsDatabase,
    Leaf,
    cookieValue,
    login,
    resultOf,
    setCookies,
)
from txsessions import Config, Session, Sessions
from txsessions._hold import UNAVAILABLE

# The resource wrapper


def test_responseWaitsForTheSave(sessions: Sessions, db: ControlledDatabase) -> None:
    db.holdSaves = True
    pending = kvBrowser(sessions).start("/set/a/1")
    assert pending.fired == []
    db.release()
    pending.flush()
    [response] = pending.fired
    assert cookieValue(response, COOKIE)
    assert resultOf(response.content()) == b"ok"


def test_changeAfterTheHeadersIsSavedBeforeTheResponseEnds(
    browser: Browser, sessions: Sessions, db: ControlledDatabase
) -> None:
    sid = login(browser)
    stub: Any = StubTreq(sessions.wrap(kvApp(sessions).resource()))
    db.holdSaves = True
    d = stub.get("http://example.com/stream", cookies={COOKIE: sid})
    stub.flush()
    body = resultOf(d).content()
    stub.flush()
    assert not body.called
    db.release()
    stub.flush()
    assert resultOf(body) == b"first second"
    _, values = browser.get("/get/late", {COOKIE: sid})
    assert json.loads(values) == "yes"


def test_newSessionChangedAfterTheHeadersIsNotSaved(
    browser: Browser, sessions: Sessions
) -> None:
    response, body = browser.get("/stream")
    assert body == b"first second"
    assert setCookies(response) == []
    assert resultOf(sessions.count()) == 0


def test_saveFailureBeforeTheHeadersIsA503WithoutCookie(
    browser: Browser, db: ControlledDatabase
) -> None:
    db.failSaves = True
    response, body = browser.get("/set/a/1")
    assert response.code == 503
    assert body == UNAVAILABLE
    assert setCookies(response) == []


def test_a503KeepsTheHeadersOfTheConnection(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    """
    The 503 of a save that failed replaces what the application had set,
    but not what Twisted set for the connection: a client that asked for
    C{Connection: close} is told so, with the C{Server} and C{Date} headers.
    """
    from tests.support import get, rawHTTP

    db.failSaves = True
    resource = sessions.wrap(kvApp(sessions).resource())
    out = rawHTTP(resource, get(b"/set/a/1", b"Connection: close\r\n")).value()
    head = out.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 503 ")
    assert b"\r\nconnection: close" in head
    assert b"\r\nserver: " in head and b"\r\ndate: " in head
    assert b"set-cookie" not in head


def test_saveFailureAfterTheHeadersAbortsTheResponse(
    browser: Browser, sessions: Sessions, db: ControlledDatabase
) -> None:
    sid = login(browser)
    db.failSaves = True
    stub: Any = StubTreq(sessions.wrap(kvApp(sessions).resource()))
    assertCutShort(stub, stub.get("http://example.com/stream", cookies={COOKIE: sid}))


def assertCutShort(stub: Any, d: Deferred[Any]) -> None:
    """
    Assert that the response C{d} (from C{stub}) began, then was cut short.
    """
    stub.flush()
    body = resultOf(d).content()
    stub.flush()
    with pytest.raises(ResponseFailed):
        resultOf(body)


def test_aBodyReturnedAfterAWriteIsNoFreshAnswer(
    browser: Browser, sessions: Sessions, db: ControlledDatabase
) -> None:
    """
    A handler that writes part of its response, changes the session again
    and returns the rest: the response is already on its way, so a save of
    the later change that fails cuts it short, as for any write after the
    headers.  It is no 200 that ends well with a 503's body in it, the
    change lost without the client knowing.
    """
    sid = login(browser)
    app = Klein()

    @app.route("/write-then-return")
    @sessions.withSession
    def writeThenReturn(request: IRequest, session: Session) -> str:
        session.set("a", 2)
        request.write(b"head;")  # the first save holds the response
        db.failSaves = True  # the store goes down
        session.set("b", "not to be lost quietly")
        return "tail"

    db.holdSaves = True
    stub: Any = StubTreq(app.resource())
    d = stub.get("http://example.com/write-then-return", cookies={COOKIE: sid})
    stub.flush()
    db.release()
    assertCutShort(stub, d)


@pytest.mark.parametrize("wrapped", [True, False])
def test_aFailedSaveAfterARegenerateSendsTheNewID(
    sessions: Sessions, db: ControlledDatabase, wrapped: bool
) -> None:
    """
    A login that regenerates, then writes, the write's save failing: the
    503 carries the new id's cookie, as a 5xx after a regenerate does.  The
    rename has landed, so the old id the client holds is dead; without the
    new one, the session and its data were lost for good (helper-49).  The
    response is the held one (under L{Sessions.wrap}) or a C{withSession}
    handler's.
    """
    kv = kvApp(sessions)

    async def regenerateThenWrite(session: Session) -> str:
        await session.regenerate()
        db.failSaves = True  # the store fails the save that follows
        session.set("user", "alice")
        return "ok"

    @kv.route("/wrapped-login")
    async def wrappedLogin(request: IRequest) -> str:
        return await regenerateThenWrite(txsessions.get(request))

    @kv.route("/login")
    @sessions.withSession
    async def login(request: IRequest, session: Session) -> str:
        return await regenerateThenWrite(session)

    browser = Browser(sessions.wrap(kv.resource()))
    sid = cookieValue(browser.get("/set/cart/3")[0], COOKIE)
    response, body = browser.get(
        "/wrapped-login" if wrapped else "/login", {COOKIE: sid}
    )
    assert (response.code, body) == (503, UNAVAILABLE)
    db.failSaves = False
    newID = cookieValue(response, COOKIE)
    assert newID and newID != sid
    assert json.loads(browser.get("/get/cart", {COOKIE: newID})[1]) == "3"
    assert json.loads(browser.get("/get/user", {COOKIE: newID})[1]) is None
    assert json.loads(browser.get("/get/cart", {COOKIE: sid})[1]) is None


@pytest.mark.parametrize("outerKind", ["returns", "async", "writes"])
def test_nestedWithSessionSavesTheOuterChange(
    browser: Browser, sessions: Sessions, outerKind: str
) -> None:
    """
    A withSession handler that calls another, which answers first: the
    outer handler's later change is saved too, whether it returns its body,
    is async or writes (helper-27, helper-29: the inner answer released
    the held response, and the outer change was then dropped).
    """
    sid = login(browser)
    app = Klein()

    @sessions.withSession
    def inner(request: IRequest, session: Session) -> str:
        session.set("a", "1")
        return "inner;"

    def outerBody(request: IRequest, session: Session) -> str:
        first = inner(request)
        session.set("b", "2")
        if outerKind == "writes":
            request.write(b"x;")
        return str(first) + "outer"

    if outerKind == "async":

        @app.route("/outer")
        @sessions.withSession
        async def outer(request: IRequest, session: Session) -> str:
            return outerBody(request, session)

    else:
        app.route("/outer")(sessions.withSession(outerBody))

    response, body = Browser(app.resource()).get("/outer", {COOKIE: sid})
    expected = b"x;inner;outer" if outerKind == "writes" else b"inner;outer"
    assert (response.code, body) == (200, expected)
    assert json.loads(browser.get("/get/a", {COOKIE: sid})[1]) == "1"
    assert json.loads(browser.get("/get/b", {COOKIE: sid})[1]) == "2"


def test_destroyFailureIsA503(browser: Browser, db: ControlledDatabase) -> None:
    sid = login(browser)
    db.failDestroys = True
    response, _ = browser.get("/destroy", {COOKIE: sid})
    assert response.code == 503
    assert setCookies(response) == []


def test_loadFailureIsA503(browser: Browser, db: ControlledDatabase) -> None:
    sid = login(browser)
    db.failLoads = True
    response, body = browser.get("/all", {COOKIE: sid})
    assert response.code == 503
    assert b"unavailable" in body
    assert setCookies(response) == []


def test_handlerErrorSavesNothing(browser: Browser, db: ControlledDatabase) -> None:
    saves = len(db.saves)
    response, _ = browser.get("/crash")
    assert response.code == 500
    assert setCookies(response) == []
    assert len(db.saves) == saves


def test_varyCookie(browser: Browser) -> None:
    response, _ = browser.get("/all")
    assert response.headers.getRawHeaders("vary") == ["Cookie"]


def test_secureCookieOverTLS(sessions: Sessions) -> None:
    browser = kvBrowser(sessions, "https://example.com")
    response, _ = browser.get("/set/a/1")
    [header] = setCookies(response)
    assert header.endswith("; Max-Age=10; HttpOnly; Secure; SameSite=Lax")


def test_plainHTTPCookieIsNotSecure(browser: Browser) -> None:
    response, _ = browser.get("/set/a/1")
    [header] = setCookies(response)
    assert header.endswith("; Max-Age=10; HttpOnly; SameSite=Lax")


def test_headGetsTheCookieAndNoBody(browser: Browser) -> None:
    response, body = browser.request("HEAD", "/set/a/1")
    assert response.code == 200
    assert body == b""
    assert cookieValue(response, COOKIE)


def test_wrapperIsTransparentToAResourceTree(sessions: Sessions) -> None:
    class Visits(Resource):
        isLeaf = True

        def render_GET(self, request: IRequest) -> bytes:
            session = txsessions.get(request)
            session.set("visits", session.get("visits", 0) + 1)
            return b"%d %s" % (session.get("visits"), b"/".join(request.prepath))

    inner = Resource()
    inner.putChild(b"count", Visits())
    inner.putChild(b"static", Data(b"plain", "text/plain"))
    root = Resource()
    root.putChild(b"app", sessions.wrap(inner))
    browser = Browser(root)
    response, body = browser.get("/app/count")
    assert body == b"1 app/count"
    sid = cookieValue(response, COOKIE)
    _, body = browser.get("/app/count", {COOKIE: sid})
    assert body == b"2 app/count"
    _, body = browser.get("/app/static")
    assert body == b"plain"
    response, _ = browser.get("/app/missing")
    assert response.code == 404


def test_wrapperAtTheRootRendersTheWrappedRoot(sessions: Sessions) -> None:
    class Root(Resource):
        def getChild(self, path: bytes, request: IRequest) -> Resource:
            return self if path == b"" else super().getChild(path, request)

        def render_GET(self, request: IRequest) -> bytes:
            return b"new" if txsessions.get(request).isNew else b"old"

    browser = Browser(sessions.wrap(Root()))
    assert browser.get("/")[1] == b"new"


def test_kleinAppMountedBelowTheRoot(sessions: Sessions) -> None:
    root = Resource()
    root.putChild(b"kv", sessions.wrap(kvApp(sessions).resource()))
    browser = Browser(root)
    response, _ = browser.get("/kv/set/a/1")
    sid = cookieValue(response, COOKIE)
    assert browser.get("/kv/get/a", {COOKIE: sid})[1] == b'"1"'


def test_kleinBranchRoute(sessions: Sessions) -> None:
    app = Klein()

    @app.route("/files/", branch=True)
    def files(request: IRequest) -> str:
        txsessions.get(request).set("seen", True)
        return "/".join(p.decode() for p in request.postpath)

    browser = Browser(sessions.wrap(app.resource()))
    response, body = browser.get("/files/a/b")
    assert body == b"a/b"
    assert cookieValue(response, COOKIE)


def test_putChildOnTheWrapperIsRefused(sessions: Sessions) -> None:
    with pytest.raises(NotImplementedError):
        sessions.wrap(Resource()).putChild(b"x", Resource())


# The Klein decorator


def decoratedApp(sessions: Sessions) -> Klein:
    app = Klein()

    @app.route("/sync")
    @sessions.withSession
    def sync(request: IRequest, session: Session) -> str:
        session.set("n", session.get("n", 0) + 1)
        return f"sync {session.get('n')}"

    @app.route("/async/<word>")
    @sessions.withSession
    async def asynchronous(request: IRequest, session: Session, word: str) -> str:
        await Deferred.fromCoroutine(_noop())
        session.set("word", word)
        return f"async {word}"

    return app


async def _noop() -> None:
    return None


def test_decoratorHandsTheSessionToSyncAndAsyncHandlers(sessions: Sessions) -> None:
    browser = Browser(decoratedApp(sessions).resource())
    response, body = browser.get("/sync")
    assert body == b"sync 1"
    sid = cookieValue(response, COOKIE)
    assert browser.get("/sync", {COOKIE: sid})[1] == b"sync 2"
    assert browser.get("/async/hello", {COOKIE: sid})[1] == b"async hello"
    _, body = browser.get("/sync", {COOKIE: sid})
    assert body == b"sync 3"


def test_decoratorKeepsTheHandlerName(sessions: Sessions) -> None:
    def handler(request: IRequest, session: Session) -> str:
        """Doc."""
        return ""

    wrapped = sessions.withSession(handler)
    assert wrapped.__name__ == "handler"
    assert wrapped.__doc__ == "Doc."
    assert wrapped.__wrapped__ is handler  # type: ignore[attr-defined]


def test_decoratorOnAClassBoundApp(sessions: Sessions) -> None:
    class Service:
        app = Klein()

        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        @app.route("/hi")
        @sessions.withSession
        def hi(self, request: IRequest, session: Session) -> str:
            session.set("greeted", True)
            return self.greeting

    browser = Browser(Service("hello").app.resource())
    response, body = browser.get("/hi")
    assert body == b"hello"
    assert cookieValue(response, COOKIE)


def test_decoratorAndWrapperShareOneSession(sessions: Sessions) -> None:
    app = Klein()

    @app.route("/")
    @sessions.withSession
    def both(request: IRequest, session: Session) -> str:
        return str(session is txsessions.get(request))

    browser = Browser(sessions.wrap(app.resource()))
    assert browser.get("/")[1] == b"True"


def test_decoratorAnswers503WhenTheLoadFails(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    browser = Browser(decoratedApp(sessions).resource())
    response, _ = browser.get("/sync")
    sid = cookieValue(response, COOKIE)
    db.failLoads = True
    response, body = browser.get("/sync", {COOKIE: sid})
    assert response.code == 503
    assert body == UNAVAILABLE


def test_decoratorWaitsForALoadThatAnswersLater(
    sessions: Sessions, db: ControlledDatabase, clock: Any
) -> None:
    """
    With a database that answers later (Redis, SQLite), the handler, plain
    or C{async}, runs once the session is loaded; a load that fails later
    (here: at the deadline) is a 503, and the handler does not run.
    """
    app = decoratedApp(sessions)
    sid = cookieValue(Browser(app.resource()).get("/sync")[0], COOKIE)
    db.holdLoads = True

    def later(path: str) -> tuple[Any, bytes]:
        pending = Browser(app.resource()).start(path, {COOKIE: sid})
        assert pending.fired == []
        db.release()
        pending.flush()
        [response] = pending.fired
        return response, resultOf(response.content())

    assert later("/sync")[1] == b"sync 2"
    assert later("/async/later")[1] == b"async later"
    saves = len(db.saves)
    pending = Browser(app.resource()).start("/sync", {COOKIE: sid})
    clock.advance(sessions.config.databaseTimeout)
    pending.flush()
    [response] = pending.fired
    assert (response.code, resultOf(response.content())) == (503, UNAVAILABLE)
    db.release()  # too late: the handler does not run
    pending.flush()
    assert len(db.saves) == saves


@pytest.mark.parametrize("later", [False, True])
def test_aDatabaseThatLoadsInPartsIsLoadedThatWay(clock: Any, later: bool) -> None:
    """
    A database offering C{loadParts} (Redis) is loaded through it, by the
    decorator and the wrapper alike, whether it answers at once or later:
    its sessions are read as through C{load}, and an id it does not know
    (or one whose session has ended) gives a new session.
    """
    db = InPartsDatabase(clock)
    sessions = Sessions(Config(cookie=COOKIE, expires=10), db, clock)
    decorated = decoratedApp(sessions).resource()
    sid = cookieValue(Browser(decorated).get("/sync")[0], COOKIE)
    db.holdLoads = later

    def get(resource: Any, path: str, sid: str) -> bytes:
        pending = Browser(resource).start(path, {COOKIE: sid})
        db.release()
        pending.flush()
        [response] = pending.fired
        assert response.code == 200
        body: bytes = resultOf(response.content())
        return body

    assert get(decorated, "/sync", sid) == b"sync 2"
    wrapped = sessions.wrap(kvApp(sessions).resource())
    assert json.loads(get(wrapped, "/all", sid)) == {
        "isNew": False,
        "values": {"n": 2},
    }
    assert get(decorated, "/sync", "x" * 43) == b"sync 1"
    clock.advance(10)
    assert get(decorated, "/sync", sid) == b"sync 1"
    assert (db.partLoads, db.loads) == (4, 4)


def test_decoratorNeedsARequest(sessions: Sessions) -> None:
    handler = sessions.withSession(lambda: None)
    with pytest.raises(TypeError, match="not called with a request"):
        resultOf(Deferred.fromCoroutine(handler()))


# Over a real port


@pytest_twisted.ensureDeferred
async def test_overARealPort(listen: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE, expires=60))
    try:
        base, client = listen(sessions.wrap(kvApp(sessions).resource()))
        response = await client.get(base + "/set/user/bob")
        assert response.code == 200
        await response.content()
        sid = cookieValue(response, COOKIE)
        response = await client.get(base + "/all", cookies={COOKIE: sid})
        assert json.loads(await response.content()) == {
            "isNew": False,
            "values": {"user": "bob"},
        }
        response = await client.get(base + "/destroy", cookies={COOKIE: sid})
        await response.content()
        response = await client.get(base + "/all", cookies={COOKIE: sid})
        assert json.loads(await response.content())["isNew"] is True
    finally:
        await sessions.close()


@pytest_twisted.ensureDeferred
async def test_decoratorOverARealPort(listen: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE))
    try:
        base, client = listen(decoratedApp(sessions).resource())
        response = await client.get(base + "/sync")
        assert await response.text() == "sync 1"
        sid = cookieValue(response, COOKIE)
        response = await client.get(base + "/sync", cookies={COOKIE: sid})
        assert await response.text() == "sync 2"
    finally:
        await sessions.close()


@pytest_twisted.ensureDeferred
async def test_aThousandConcurrentIncrementsOverARealPort(listen: Any) -> None:
    from twisted.internet.defer import gatherResults

    sessions = Sessions(Config(cookie=COOKIE))
    try:
        base, client, cookies = await servedAndWritten(
            sessions, listen, "/set/user/carol"
        )

        async def increment() -> int:
            response = await client.get(base + "/incr/hits/1", cookies=cookies)
            assert response.code == 200
            return int(await response.text())

        results = await gatherResults(
            [Deferred.fromCoroutine(increment()) for _ in range(1000)]
        )
        assert sorted(results) == list(range(1, 1001))
        response = await client.get(base + "/get/hits", cookies=cookies)
        assert await response.text() == "1000"
    finally:
        await sessions.close()


# Found in review


def test_gzipInsideTheWrapperStillCompresses(sessions: Sessions) -> None:
    from twisted.web.resource import EncodingResourceWrapper
    from twisted.web.server import GzipEncoderFactory

    from tests.support import get, rawHTTP

    inner = EncodingResourceWrapper(Leaf(lambda r: b"x" * 2000), [GzipEncoderFactory()])
    out = rawHTTP(sessions.wrap(inner), get(extra=b"Accept-Encoding: gzip\r\n")).value()
    assert b"Content-Encoding: gzip" in out
    assert b"x" * 100 not in out


def test_gzipInsideACSRFResourceStillCompresses(sessions: Sessions) -> None:
    """
    L{CSRFResource} does for the leaf it finds what the session wrapper
    does (helper-41: the body went out uncompressed).
    """
    from twisted.web.resource import EncodingResourceWrapper
    from twisted.web.server import GzipEncoderFactory

    from tests.support import get, rawHTTP
    from txsessions.csrf import CSRFResource

    inner = EncodingResourceWrapper(Leaf(lambda r: b"x" * 2000), [GzipEncoderFactory()])
    root = sessions.wrap(CSRFResource(sessions, inner))
    out = rawHTTP(root, get(extra=b"Accept-Encoding: gzip\r\n")).value()
    assert b"Content-Encoding: gzip" in out
    assert b"x" * 100 not in out


def test_headersChangedWhileTheSaveIsPendingAreNotSent(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    from tests.support import get, rawHTTP

    def render(request: IRequest) -> Any:
        from twisted.web.server import NOT_DONE_YET

        txsessions.get(request).set("a", 1)
        request.write(b"partial ")
        request.setHeader(b"X-Late", b"1")
        request.setResponseCode(500)
        request.write(b"rest")
        request.finish()
        return NOT_DONE_YET

    db.holdSaves = True
    transport = rawHTTP(sessions.wrap(Leaf(render)), get())
    db.release()
    out = transport.value()
    assert out.startswith(b"HTTP/1.1 200 OK")
    assert b"X-Late" not in out
    assert out.endswith(b"partial rest\r\n0\r\n\r\n")


def test_incrementAwaitedAfterTheFirstWriteGetsItsValue(
    sessions: Sessions, browser: Browser
) -> None:
    from tests.support import get, rawHTTP

    sid = login(browser)
    results: list[Any] = []

    def render(request: IRequest) -> Any:
        from twisted.web.server import NOT_DONE_YET

        d = txsessions.get(request).increment("n", 5)
        request.write(b"streaming")
        d.addCallback(results.append)
        d.addCallback(lambda _: request.finish())
        return NOT_DONE_YET

    rawHTTP(
        sessions.wrap(Leaf(render)), get(extra=b"Cookie: sid=" + sid.encode() + b"\r\n")
    )
    assert results == [5]


def test_aCaughtSessionDestroyedErrorIsNoStoreFailure(
    sessions: Sessions, browser: Browser
) -> None:
    from txsessions import SessionDestroyedError

    sid = login(browser)
    app = Klein()

    @app.route("/")
    @sessions.withSession
    async def count(request: IRequest, session: Session) -> str:
        resultOf(sessions.destroyByID(sid))
        try:
            await session.increment("n")
        except SessionDestroyedError:
            return "gone"
        return "counted"

    response, body = Browser(app.resource()).get("/", {COOKIE: sid})
    assert (response.code, body) == (200, b"gone")


def test_destroyAfterClearOrShiftStoresNothingAndExpiresTheCookie(
    sessions: Sessions, browser: Browser
) -> None:
    app = Klein()

    @app.route("/clear-then-destroy")
    @sessions.withSession
    async def clearThenDestroy(request: IRequest, session: Session) -> str:
        session.set("a", 1)
        session.clear()
        await session.destroy()
        return "bye"

    @app.route("/shift-then-destroy")
    async def shiftThenDestroy(request: IRequest) -> str:
        await sessions.shiftExpiration(request)
        await sessions.destroy(request)
        return "bye"

    kleinBrowser = Browser(sessions.wrap(app.resource()))
    response, _ = kleinBrowser.get("/clear-then-destroy")
    assert setCookies(response) == []
    assert resultOf(sessions.count()) == 0
    sid = login(browser)
    response, _ = kleinBrowser.get("/shift-then-destroy", {COOKIE: sid})
    [header] = setCookies(response)
    assert "Max-Age=0" in header
    assert resultOf(sessions.count()) == 0


def test_startAfterTheResponseBeganCreatesNoOrphan(sessions: Sessions) -> None:
    from tests.support import get, rawHTTP

    def render(request: IRequest) -> Any:
        from twisted.web.server import NOT_DONE_YET

        request.write(b"streaming")

        def started(session: Session) -> None:
            session.set("a", 1)
            request.finish()

        sessions.start(request).addCallback(started)
        return NOT_DONE_YET

    out = rawHTTP(Leaf(render), get()).value()
    assert b"Set-Cookie" not in out
    assert out.endswith(b"0\r\n\r\n")
    assert resultOf(sessions.count()) == 0


def test_abortWorksWithoutATransport() -> None:
    from txsessions._hold import abort

    class H2Stream:
        transport = None
        aborted = False

        def abortConnection(self) -> None:
            self.aborted = True

    class Request:
        channel = H2Stream()

    request = Request()
    abort(request)
    assert request.channel.aborted


def test_aFullDatabaseAnswers503ToNewSessionsOnly(clock: Any) -> None:
    from txsessions import MemoryDatabase

    sessions = Sessions(
        Config(cookie=COOKIE), MemoryDatabase(clock, maxSessions=1), clock
    )
    browser = kvBrowser(sessions)
    sid = login(browser)
    response, body = browser.get("/set/a/1")
    assert response.code == 503 and setCookies(response) == []
    response, _ = browser.get("/set/a/1", {COOKIE: sid})
    assert response.code == 200
    response, _ = browser.get("/all")
    assert response.code == 200


def test_aDatabaseThatNeverAnswersGives503AtTheDeadline(
    clock: Any, db: ControlledDatabase
) -> None:
    sessions = Sessions(Config(cookie=COOKIE, databaseTimeout=5), db, clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    db.holdLoads = True
    pending = browser.start("/all", {COOKIE: sid})
    clock.advance(4.9)
    pending.flush()
    assert pending.fired == []
    clock.advance(0.1)
    pending.flush()
    [response] = pending.fired
    assert response.code == 503
    db.release()  # the late answer is ignored
    assert clock.getDelayedCalls() == []


def test_aSaveThatNeverAnswersGives503AtTheDeadline(
    clock: Any, db: ControlledDatabase
) -> None:
    sessions = Sessions(Config(cookie=COOKIE, databaseTimeout=5), db, clock)
    db.holdSaves = True
    pending = kvBrowser(sessions).start("/set/a/1")
    clock.advance(5)
    pending.flush()
    [response] = pending.fired
    assert response.code == 503
    assert setCookies(response) == []
    db.release()


def test_aStoreFailureIsLoggedOncePerRequest(
    sessions: Sessions, browser: Browser, db: Any
) -> None:
    from twisted.logger import LogLevel, globalLogPublisher

    sid = login(browser)
    errors: list[Any] = []

    def observe(event: Any) -> None:
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            errors.append(event)

    observer: Any = observe
    globalLogPublisher.addObserver(observer)
    try:
        db.failSaves = True
        response, _ = browser.get("/set/a/2", {COOKIE: sid})
    finally:
        globalLogPublisher.removeObserver(observer)
    assert response.code == 503
    assert len(errors) == 1
    assert errors[0]["sessionEvent"] == "storeError"


@pytest.mark.parametrize("outcome", ["saved", "failed"])
def test_aPlainHandlersResponseWaitsForALateSave(
    sessions: Sessions, db: Any, outcome: str
) -> None:
    # A synchronous handler's response skips the held response only when
    # the database has answered; otherwise it waits for the save as ever,
    # and a failed save is a 503.
    app = Klein()

    @app.route("/")
    @sessions.withSession
    def home(request: IRequest, session: Session) -> str:
        session.set("a", 1)
        return "ok"

    stub: Any = StubTreq(app.resource())
    db.holdSaves = outcome == "saved"
    db.failSaves = outcome == "failed"
    d = stub.get("http://example.com/")
    stub.flush()
    if outcome == "saved":
        assert db.heldSaves and (d.paused or not d.called)
        db.release()
        stub.flush()
    response = resultOf(d)
    if outcome == "saved":
        assert response.code == 200
        assert resultOf(response.content()) == b"ok"
        assert len(setCookies(response)) == 1
    else:
        assert response.code == 503
        assert setCookies(response) == []


def test_aKeepAliveConnectionReadsEachRequestsOwnCookie(sessions: Sessions) -> None:
    # What a connection remembers of the Cookie header it last read never
    # answers for another header: requests alternating between two
    # sessions, a tampered cookie and no cookie, on one connection, each
    # get their own.
    import re

    from twisted.internet.testing import StringTransport
    from twisted.web.server import Site

    from tests.support import get

    app = Klein()

    @app.route("/set/<who>")
    @sessions.withSession
    def set(request: IRequest, session: Session, who: str) -> str:
        session.set("who", who)
        return who

    @app.route("/who")
    @sessions.withSession
    def who(request: IRequest, session: Session) -> str:
        return str(session.get("who", "nobody"))

    channel = Site(app.resource()).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)

    def send(path: bytes, cookie: bytes | None = None) -> bytes:
        transport.clear()
        extra = b"" if cookie is None else b"Cookie: " + cookie + b"\r\n"
        channel.dataReceived(get(path, extra))
        sent: bytes = transport.value()
        return sent

    def cookieOf(response: bytes) -> bytes:
        found = re.search(rb"Set-Cookie: (" + COOKIE.encode() + rb"=[^;]+)", response)
        assert found is not None
        return found.group(1)

    alice = cookieOf(send(b"/set/alice"))
    bob = cookieOf(send(b"/set/bob"))
    tampered = alice[:-2] + (b"AA" if alice[-2:] != b"AA" else b"BB")
    for cookie, expected in [
        (alice, b"alice"),
        (bob, b"bob"),
        (alice, b"alice"),
        (alice, b"alice"),
        (tampered, b"nobody"),
        (None, b"nobody"),
        (bob, b"bob"),
        (alice + b"; " + bob, b"alice"),
    ]:
        assert send(b"/who", cookie).endswith(expected + b"\r\n0\r\n\r\n"), cookie


def test_aHandlerCalledAfterALaterLoadIsAnsweredOnceSaved(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    """
    A plain handler called once a later load answered has its changes saved
    as soon as it returns: its response waits for that save, and is a 503
    without a cookie when the save fails.
    """
    app = decoratedApp(sessions)
    sid = cookieValue(Browser(app.resource()).get("/sync")[0], COOKIE)
    db.holdLoads = db.holdSaves = True
    pending = Browser(app.resource()).start("/sync", {COOKIE: sid})
    db.release()  # the load: the handler runs, and its save waits
    pending.flush()
    assert pending.fired == []
    assert len(db.heldSaves) == 1
    db.release()
    pending.flush()
    [response] = pending.fired
    assert (response.code, resultOf(response.content())) == (200, b"sync 2")
    db.holdSaves = False
    db.failSaves = True
    pending = Browser(app.resource()).start("/sync", {COOKIE: sid})
    db.release()
    pending.flush()
    [response] = pending.fired
    assert (response.code, resultOf(response.content())) == (503, UNAVAILABLE)
    assert setCookies(response) == []
