"""
Tests for L{txsessions.testing}: the kit users test their own apps with.
"""

from __future__ import annotations

from typing import Any

import pytest
from klein import Klein
from twisted.internet.task import Clock, deferLater
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from txsessions import Config, Session, Sessions
from txsessions.codec import CookieCodec, generateKey
from txsessions.testing import SessionsKit, StubBrowser


def makeApp(sessions: Sessions, clock: Any = None) -> Klein:
    """
    The app a user would test: /login, /secret, /logout, and /slow, which
    answers a second later on C{clock}.
    """
    app = Klein()

    @app.route("/login", methods=["GET", "POST"])
    @sessions.withSession
    async def login(request: IRequest, session: Session) -> str:
        await session.regenerate()
        session.set("authenticated", True)
        if request.method == b"POST":
            request.setResponseCode(303)
            request.setHeader(b"Location", b"/secret")
        return "welcome"

    @app.route("/secret")
    @sessions.withSession
    def secret(request: IRequest, session: Session) -> str:
        if not session.getBooleanDefault("authenticated", False):
            request.setResponseCode(403)
            return "Forbidden"
        return "The cake is a lie!"

    @app.route("/logout")
    @sessions.withSession
    async def logout(request: IRequest, session: Session) -> str:
        await session.destroy()
        return "bye"

    @app.route("/slow")
    @sessions.withSession
    async def slow(request: IRequest, session: Session) -> str:
        await deferLater(clock, 1)
        session.set("slow", True)
        return "done"

    @app.route("/echo", methods=["POST"])
    def echo(request: IRequest) -> bytes:
        body: bytes = request.content.read()
        return body

    return app


@pytest.fixture
def kit() -> SessionsKit:
    return SessionsKit(Config(cookie="sid", expires=60))


@pytest.fixture
def browser(kit: SessionsKit) -> StubBrowser:
    return kit.browser(makeApp(kit.sessions, kit.clock))


def test_secretIsForbiddenBeforeLogin(browser: StubBrowser) -> None:
    response = browser.get("/secret")
    assert response.code == 403
    assert response.text == "Forbidden"


def test_loginKeepsTheCookieForTheNextRequest(browser: StubBrowser) -> None:
    browser.get("/login")
    assert browser.sessionID is not None
    assert browser.get("/secret").text == "The cake is a lie!"


def test_loginAnswersWithASecureCookieOverHTTPS(browser: StubBrowser) -> None:
    (header,) = browser.get("/login").setCookies
    assert header.startswith("sid=")
    assert "; Secure" in header
    assert "Max-Age=60" in header


def test_overHTTPTheCookieIsNotSecure(kit: SessionsKit) -> None:
    browser = kit.browser(makeApp(kit.sessions), base="http://example.com")
    (header,) = browser.get("/login").setCookies
    assert "Secure" not in header
    assert browser.get("/secret").code == 200


def test_aSecureOnlyCookieIsNeitherSentNorKeptOverHTTP() -> None:
    kit = SessionsKit(Config(cookie="__Host-sid"))
    browser = kit.browser(makeApp(kit.sessions), base="http://example.com")
    assert browser.get("/login").setCookies == []
    assert browser.cookie("__Host-sid") is None
    assert browser.get("/secret").code == 403


def test_redirectsAreFollowedWithTheNewCookie(browser: StubBrowser) -> None:
    response = browser.post("/login")
    assert response.url == "https://example.com/secret"
    assert response.text == "The cake is a lie!"


def test_redirectsCanBeLeftUnfollowed(browser: StubBrowser) -> None:
    response = browser.post("/login", allow_redirects=False)
    assert response.code == 303
    assert response.headers.getRawHeaders(b"location") == [b"/secret"]


def test_theSessionExpiresWhenTheClockMoves(
    kit: SessionsKit, browser: StubBrowser
) -> None:
    browser.get("/login")
    kit.advance(59)
    assert browser.get("/secret").code == 200
    kit.advance(1)
    assert browser.get("/secret").code == 403
    assert kit.result(kit.sessions.count()) == 0


def test_theBrowserForgetsTheCookieAtItsMaxAge(
    kit: SessionsKit, browser: StubBrowser
) -> None:
    browser.get("/login")
    kit.advance(59)
    assert browser.cookie("sid") is not None
    kit.advance(1)
    assert browser.cookie("sid") is None
    assert browser.sessionID is None


def test_theCookieOutlivesTheSessionWithoutAMaxAge() -> None:
    """
    With no lifetime the cookie lasts until the browser closes, so time
    alone removes nothing.
    """
    kit = SessionsKit(Config(cookie="sid"))
    browser = kit.browser(makeApp(kit.sessions))
    browser.get("/login")
    kit.advance(10**6)
    assert browser.get("/secret").code == 200


def test_logoutClearsTheCookie(kit: SessionsKit, browser: StubBrowser) -> None:
    browser.get("/login")
    response = browser.get("/logout")
    (header,) = response.setCookies
    assert "Max-Age=0" in header
    assert browser.cookie("sid") is None
    assert browser.get("/secret").code == 403
    assert kit.result(kit.sessions.count()) == 0


def test_twoBrowsersAreIndependent(kit: SessionsKit, browser: StubBrowser) -> None:
    other = kit.browser(makeApp(kit.sessions))
    browser.get("/login")
    assert other.get("/secret").code == 403
    other.get("/login")
    assert other.sessionID != browser.sessionID
    other.get("/logout")
    assert browser.get("/secret").code == 200
    assert other.get("/secret").code == 403


def test_aResponseWaitingForTheClockArrivesAfterAdvance(
    kit: SessionsKit, browser: StubBrowser
) -> None:
    d = browser.send("GET", "/slow")
    with pytest.raises(AssertionError, match="has not fired"):
        kit.result(d)
    kit.advance(1)
    response = kit.result(d)
    assert response.text == "done"
    assert browser.sessionID is not None


def test_requestSaysWhenTheAppHasNotAnswered(browser: StubBrowser) -> None:
    with pytest.raises(AssertionError, match="kit.advance"):
        browser.get("/slow")


def test_resultRaisesWhatTheDeferredFailedWith(kit: SessionsKit) -> None:
    from twisted.internet.defer import fail

    with pytest.raises(ZeroDivisionError):
        kit.result(fail(ZeroDivisionError()))


def test_bodiesAreSent(browser: StubBrowser) -> None:
    assert browser.post("/echo", data=b"hello").body == b"hello"
    assert browser.post("/echo", json={"a": 1}).json() == {"a": 1}


def test_absoluteURLs(browser: StubBrowser) -> None:
    browser.get("https://example.com/login")
    assert browser.get("https://example.com/secret").code == 200


def test_aHostOnlyCookieStaysWithItsHost(browser: StubBrowser) -> None:
    browser.get("/login")
    assert browser.get("https://sub.example.com/secret").code == 403


def test_sessionIDIsDecodedThroughTheEncoding() -> None:
    clock = Clock()
    codec = CookieCodec([generateKey()], clock=clock.seconds)
    kit = SessionsKit(Config(cookie="sid", encoding=codec), clock=clock)
    browser = kit.browser(makeApp(kit.sessions))
    browser.get("/login")
    raw = browser.cookie("sid")
    assert raw is not None
    assert browser.sessionID is not None
    assert browser.sessionID != raw
    assert codec.decode("sid", raw) == browser.sessionID


def test_aWrappedResourceWorksToo(kit: SessionsKit) -> None:
    import txsessions

    app = Klein()

    @app.route("/")
    def home(request: IRequest) -> str:
        session = txsessions.get(request)
        session.set("n", session.get("n", 0) + 1)
        return str(session.get("n"))

    browser = kit.browser(kit.sessions.wrap(app.resource()))
    assert [browser.get("/").text for _ in range(3)] == ["1", "2", "3"]


class CookieSetter(Resource):
    """
    Sets the cookie its query string spells, and shows the cookies it gets.
    """

    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        for header in request.args.get(b"set", []):
            request.responseHeaders.addRawHeader(b"set-cookie", header)
        return request.getHeader(b"cookie") or b""


def test_aSecureCookieIsRefusedOverHTTP(kit: SessionsKit) -> None:
    browser = kit.browser(CookieSetter(), base="http://example.com")
    browser.get("/", params={"set": ["a=1; Secure", "b=2"]})
    assert browser.cookie("a") is None
    assert browser.cookie("b") == "2"


def test_aSecureCookieIsSentOnlyOverHTTPS(kit: SessionsKit) -> None:
    browser = kit.browser(CookieSetter())
    browser.get("/", params={"set": "a=1; Secure"})
    assert browser.get("/").text == "a=1"
    assert browser.get("http://example.com/").text == ""


def test_aCookieIsSentOnlyUnderItsPath(kit: SessionsKit) -> None:
    browser = kit.browser(CookieSetter())
    browser.get("/", params={"set": "a=1; Path=/in"})
    assert browser.get("/in/x").text == "a=1"
    assert browser.get("/out").text == ""


def test_expiresCountsOnTheKitsClock(kit: SessionsKit) -> None:
    browser = kit.browser(CookieSetter())
    browser.get("/", params={"set": "a=1; Expires=Thu, 01 Jan 1970 00:01:40 GMT"})
    kit.advance(99)
    assert browser.get("/").text == "a=1"
    kit.advance(1)
    assert browser.get("/").text == ""


def test_aHostPrefixedCookieNeedsSecureAndRootPath(kit: SessionsKit) -> None:
    browser = kit.browser(CookieSetter())
    browser.get(
        "/",
        params={
            "set": [
                "__Host-a=1; Path=/x; Secure",
                "__Host-b=2",
                "__Host-c=3; Path=/; Secure",
            ]
        },
    )
    assert [browser.cookie(n) for n in ("__Host-a", "__Host-b", "__Host-c")] == [
        None,
        None,
        "3",
    ]


def _whoApp(sessions: Sessions) -> Klein:
    app = Klein()

    @app.route("/login")
    @sessions.withSession
    def login(request: IRequest, session: Session) -> str:
        session.set("user", "alice")
        return "ok"

    @app.route("/whoami")
    @sessions.withSession
    def whoami(request: IRequest, session: Session) -> str:
        return session.getStringDefault("user", "nobody")

    return app


def test_aSealedCookieExpiresOnTheKitsClock() -> None:
    """
    A L{CookieCodec} made on the wall clock tells the time by the kit's
    clock inside the kit: a sealed cookie is refused after its C{maxAge} as
    it is in production.  (Before, C{kit.advance} past C{maxAge} left the
    user logged in.)
    """
    codec = CookieCodec([generateKey()], maxAge=30 * 86400)
    kit = SessionsKit(Config(cookie="sid", encoding=codec))
    browser = kit.browser(_whoApp(kit.sessions))
    browser.get("/login")
    kit.advance(29 * 86400)
    assert browser.get("/whoami").text == "alice"
    kit.advance(30 * 86400 + 1)  # the cookie re-sealed at 29 days has expired
    assert browser.get("/whoami").text == "nobody"


@pytest.mark.parametrize("code", [307, 308])
def test_aPostAnswered307Or308IsSentAgain(code: int) -> None:
    """
    A C{POST} answered 307 or 308 is sent again, body and all, as a browser
    does (helper-47: a 307 raised, a 308 became a C{GET}).
    """
    kit = SessionsKit(Config(cookie="sid"))
    app = Klein()

    @app.route("/old", methods=["POST"])
    def old(request: IRequest) -> str:
        request.setResponseCode(code)
        request.setHeader(b"Location", b"/new")
        return ""

    @app.route("/new", methods=["POST"])
    def new(request: IRequest) -> bytes:
        body: bytes = request.content.read()
        return body

    response = kit.browser(app).post("/old", data=b"payload")
    assert (response.code, response.body) == (200, b"payload")


def test_aLogoutForgetsTheCookieOnAFractionalClock(
    kit: SessionsKit, browser: StubBrowser
) -> None:
    """
    C{Max-Age=0} deletes the cookie whatever the clock's fraction of a
    second (helper-47: the expiry, rounded up, left an empty cookie).
    """
    browser.get("/login")
    assert browser.cookie("sid")
    kit.advance(0.5)
    assert browser.get("/logout").text == "bye"
    assert browser.cookie("sid") is None


@pytest.mark.parametrize("code", [301, 302, 303])
def test_aPostAnsweredWithARedirectIsFollowedAsABrowserDoes(code: int) -> None:
    """
    A C{POST} answered 301, 302 (what C{redirectTo} sends) or 303 is
    followed with a C{GET}, as a browser does (helper-46: the 301 and 302
    raised C{ResponseFailed}).
    """
    kit = SessionsKit(Config(cookie="sid"))
    app = makeApp(kit.sessions, kit.clock)

    @app.route("/form", methods=["POST"])
    @kit.sessions.withSession
    def form(request: IRequest, session: Session) -> str:
        session.set("authenticated", True)
        request.setResponseCode(code)
        request.setHeader(b"Location", b"/secret")
        return ""

    response = kit.browser(app).post("/form")
    assert (response.code, response.text) == (200, "The cake is a lie!")


def test_aFileLikeBodyIsSentAsTreqSendsIt(browser: StubBrowser) -> None:
    """
    C{data=} takes a binary file, as treq does (helper-46: a C{TypeError}).
    """
    import io

    assert browser.post("/echo", data=io.BytesIO(b"hello")).body == b"hello"


def test_aCookieLastsItsWholeMaxAgeOnAFractionalClock(
    kit: SessionsKit, browser: StubBrowser
) -> None:
    """
    A cookie set at 0.9 s with C{Max-Age=60} is kept while the session it
    names lives, until 60.9 s, and forgotten in the second after (the jar
    keeps whole seconds; helper-46: it rounded the time down and dropped
    the cookie at 60).
    """
    kit.advance(0.9)
    browser.get("/login")
    kit.advance(59.5)
    assert kit.result(kit.sessions.count()) == 1
    assert browser.cookie("sid") is not None
    kit.advance(0.6)
    assert browser.cookie("sid") is None


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("a=1; Path=/; Max-Age=abc", True),  # a bad Max-Age is ignored
        ("a=1; Path=/; Max-Age=0; Expires=Fri, 01 Jan 2100 00:00:00 GMT", False),
        ("a=1; Path=/; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Max-Age=0", False),
    ],
)
def test_theJarReadsMaxAgeAsBrowsersDo(header: str, kept: bool) -> None:
    """
    C{Max-Age} wins over C{Expires} wherever it comes, and one that is no
    number is ignored, not the cookie (RFC 6265 5.2.2, 5.3; helper-46).
    """
    kit = SessionsKit(Config(cookie="sid"))
    app = Klein()

    @app.route("/set")
    def setCookie(request: IRequest) -> str:
        request.responseHeaders.addRawHeader(b"Set-Cookie", header.encode())
        return "set"

    browser = kit.browser(app)
    browser.get("/set")
    assert (browser.cookie("a") == "1") is kept
