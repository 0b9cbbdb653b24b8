"""
Tests for L{txsessions.csrf}: tokens bound to the session, and the check
that refuses unsafe requests without one, under the wrapper
(L{CSRFResource}) and under the decorator (L{protect}), each on its own,
and the same again wired in by C{Config(csrf=True)}: under
L{Sessions.wrap} alone and under L{Sessions.withSession} alone.
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
import pytest
import pytest_twisted
import treq
from klein import Klein
from treq.testing import StubTreq
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

import txsessions
from tests.support import COOKIE, cookieValue, resultOf, setCookies
from txsessions import Config, MemoryDatabase, Session, Sessions
from txsessions.csrf import (
    FORBIDDEN,
    SECRET_KEY,
    TOKEN_LENGTH,
    CSRFResource,
    CSRFSettings,
    check,
    csrfExempt,
    csrfToken,
    parseOrigin,
    protect,
)

BASE = "http://example.com"
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]
SETTINGS = CSRFSettings(
    trustedOrigins=["https://app.example.com"], exemptPaths=["/hook"]
)


class App:
    """
    The same routes served two ways: C{wrapped} checks with L{CSRFResource},
    C{decorated} with L{protect}; or, when C{wired}, by the manager itself
    (C{Config(csrf=True)}), C{wrapped} under L{Sessions.wrap} alone and
    C{decorated} under L{Sessions.withSession} alone.  C{calls} records
    every handler that ran.
    """

    def __init__(self, sessions: Sessions, wired: bool = False) -> None:
        self.sessions = sessions
        self.calls: list[str] = []
        self.wired = wired
        resource: Any = self._wrapperApp().resource()
        if not wired:
            resource = CSRFResource(sessions, resource, SETTINGS)
        self.wrapped = sessions.wrap(resource)
        self.decorated = self._decoratorApp().resource()

    def _wrapperApp(self) -> Klein:
        app = Klein()
        calls = self.calls

        @app.route("/form", methods=["GET", "HEAD", "OPTIONS"])
        def form(request: IRequest) -> str:
            calls.append("form")
            return csrfToken(txsessions.get(request))

        @app.route("/change", methods=[*UNSAFE, "PROPFIND"])
        def change(request: IRequest) -> str:
            calls.append("change")
            txsessions.get(request).set("changed", request.method.decode())
            return "changed"

        @app.route("/regenerate", methods=["GET"])
        async def regenerate(request: IRequest) -> str:
            session = txsessions.get(request)
            await session.regenerate()
            return csrfToken(session)

        @app.route("/clear", methods=["GET"])
        def clear(request: IRequest) -> str:
            txsessions.get(request).clear()
            return "cleared"

        @app.route("/hook", methods=["POST"])
        def hook(request: IRequest) -> str:
            calls.append("hook")
            return "hooked"

        return app

    def _decoratorApp(self) -> Klein:
        app = Klein()
        calls = self.calls
        sessions = self.sessions

        def checked(handler: Any) -> Any:
            if self.wired:
                return sessions.withSession(handler)
            return sessions.withSession(protect(handler, SETTINGS))

        @app.route("/form", methods=["GET", "HEAD", "OPTIONS"])
        @checked
        def form(request: IRequest, session: Session) -> str:
            calls.append("form")
            return session.csrfToken()

        @app.route("/change", methods=[*UNSAFE, "PROPFIND"])
        @checked
        def change(request: IRequest, session: Session) -> str:
            calls.append("change")
            session.set("changed", request.method.decode())
            return "changed"

        @app.route("/regenerate", methods=["GET"])
        @checked
        async def regenerate(request: IRequest, session: Session) -> str:
            await session.regenerate()
            return csrfToken(session)

        @app.route("/clear", methods=["GET"])
        @checked
        def clear(request: IRequest, session: Session) -> str:
            session.clear()
            return "cleared"

        @app.route("/hook", methods=["POST"])
        @checked
        @csrfExempt
        def hook(request: IRequest, session: Session) -> str:
            calls.append("hook")
            return "hooked"

        return app


class Client:
    """
    Requests over StubTreq to one of an L{App}'s two resources, each run
    to completion.
    """

    def __init__(self, app: App, resource: Any) -> None:
        self.app = app
        self.resource = resource

    def request(
        self,
        method: str,
        path: str,
        sid: str | None = None,
        headers: dict[str, str | bytes] | None = None,
        data: dict[str, str | bytes] | None = None,
    ) -> tuple[Any, bytes]:
        stub: Any = StubTreq(self.resource)
        d = stub.request(
            method,
            BASE + path,
            cookies={COOKIE: sid} if sid else {},
            headers={k: [v] for k, v in (headers or {}).items()},
            data=data,
            allow_redirects=False,
        )
        stub.flush()
        response = resultOf(d)
        return response, resultOf(response.content())

    def token(self, sid: str | None = None) -> tuple[str, str]:
        """
        GET the form.

        @return: the session id and the token.
        """
        response, body = self.request("GET", "/form", sid)
        assert response.code == 200
        if sid is None:
            sid = cookieValue(response, COOKIE)
        return sid, body.decode("ascii")

    def stored(self, sid: str) -> Any:
        """
        What the session holds under "changed".
        """
        database: Any = self.app.sessions.database
        stored = resultOf(database.memory.load(txsessions.ids.storeKey(sid)))
        return None if stored is None else stored.values.get("changed")


def wiredSessions(sessions: Sessions) -> Sessions:
    """
    A manager on the same database and clock as C{sessions}, checking CSRF
    itself (C{Config(csrf=True)}) with L{SETTINGS}.
    """
    config = attrs.evolve(sessions.config, csrf=True, csrfSettings=SETTINGS)
    return Sessions(config, sessions.database, sessions.parts.clock)


@pytest.fixture(
    params=["wrapper", "decorator", "Config(csrf)+wrap", "Config(csrf)+withSession"]
)
def client(request: Any, sessions: Sessions) -> Client:
    wired = request.param.startswith("Config")
    app = App(wiredSessions(sessions) if wired else sessions, wired)
    decorated = request.param in ("decorator", "Config(csrf)+withSession")
    return Client(app, app.decorated if decorated else app.wrapped)


def assertRefused(client: Client, response: Any, body: bytes, sid: str | None) -> None:
    """
    A 403 before the handler ran: nothing written, no cookie.
    """
    assert response.code == 403
    assert body == FORBIDDEN
    assert "change" not in client.app.calls
    assert setCookies(response) == []
    if sid is not None:
        assert client.stored(sid) is None


# Tokens


def test_tokensDifferOnEveryCallAndNeverShowTheID(client: Client) -> None:
    sid, first = client.token()
    _, second = client.token(sid)
    assert first != second
    for token in (first, second):
        assert len(token) == TOKEN_LENGTH
        raw = base64.urlsafe_b64decode(token + "==")
        assert sid not in token
        assert sid.encode() not in raw
        assert base64.urlsafe_b64decode(sid + "==") not in raw
    for token in (first, second):
        response, body = client.request(
            "POST", "/change", sid, data={"csrf_token": token}
        )
        assert (response.code, body) == (200, b"changed")


def test_aTokenMakesANewSessionPersist(client: Client) -> None:
    response, _ = client.request("GET", "/form")
    sid = cookieValue(response, COOKIE)
    database: Any = client.app.sessions.database
    stored = resultOf(database.memory.load(txsessions.ids.storeKey(sid)))
    assert stored is not None
    assert SECRET_KEY in stored.values


def test_regenerationIssuesANewTokenAndKillsTheOld(client: Client) -> None:
    sid, old = client.token()
    response, body = client.request("GET", "/regenerate", sid)
    assert response.code == 200
    newSid, new = cookieValue(response, COOKIE), body.decode()
    response, body = client.request("POST", "/change", newSid, data={"csrf_token": old})
    assertRefused(client, response, body, newSid)
    response, body = client.request("POST", "/change", newSid, data={"csrf_token": new})
    assert response.code == 200


def test_clearingTheSessionKillsItsTokens(client: Client) -> None:
    sid, old = client.token()
    client.request("GET", "/clear", sid)
    response, body = client.request("POST", "/change", sid, data={"csrf_token": old})
    assertRefused(client, response, body, sid)


def test_aDestroyedSessionsTokensAreWorthless(
    client: Client, sessions: Sessions
) -> None:
    sid, token = client.token()
    resultOf(sessions.destroyByID(sid))
    response, body = client.request("POST", "/change", sid, data={"csrf_token": token})
    assertRefused(client, response, body, sid)


# Safe and unsafe methods


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safeMethodsAreNeverChecked(client: Client, method: str) -> None:
    response, _ = client.request(
        method, "/form", headers={"Sec-Fetch-Site": "cross-site", "Origin": "null"}
    )
    assert response.code == 200
    assert client.app.calls == ["form"]


@pytest.mark.parametrize("method", UNSAFE)
def test_aValidTokenInTheHeaderPasses(client: Client, method: str) -> None:
    sid, token = client.token()
    response, body = client.request(method, "/change", sid, {"X-CSRF-Token": token})
    assert (response.code, body) == (200, b"changed")
    assert client.stored(sid) == f'"{method}"'


def test_aValidTokenInTheFormFieldPasses(client: Client) -> None:
    sid, token = client.token()
    response, body = client.request(
        "POST", "/change", sid, data={"csrf_token": token, "text": "hi"}
    )
    assert (response.code, body) == (200, b"changed")


@pytest.mark.parametrize("method", UNSAFE)
def test_anUnsafeMethodWithoutATokenIsRefused(client: Client, method: str) -> None:
    sid, _ = client.token()
    response, body = client.request(method, "/change", sid)
    assertRefused(client, response, body, sid)


def test_aMethodNobodyKnowsIsUnsafe(client: Client) -> None:
    sid, _ = client.token()
    response, body = client.request("PROPFIND", "/change", sid)
    assert response.code == 403


def badTokens(client: Client, sid: str, token: str) -> dict[str, str | bytes]:
    _, otherToken = client.token()
    return {
        "empty": "",
        "another session's": otherToken,
        "truncated": token[:-1],
        "one character more": token + "A",
        "non-ASCII": token[:-1] + "é",
        "10 KB": "A" * 10240,
        "10 KB of a valid token": token * 120,
        "right length, wrong alphabet": "+" * TOKEN_LENGTH,
        "right length, wrong token": "A" * TOKEN_LENGTH,
        "padded": token[:-2] + "==",
        "NUL": token[:-1] + "\x00",
    }


@pytest.mark.parametrize("where", ["header", "field"])
def test_badTokensAreRefusedNever500(client: Client, where: str) -> None:
    sid, token = client.token()
    for name, bad in badTokens(client, sid, token).items():
        if where == "header":
            if "\x00" in str(bad):
                continue  # no client can send a NUL in a header
            response, body = client.request(
                "POST",
                "/change",
                sid,
                {"X-CSRF-Token": bad.encode() if isinstance(bad, str) else bad},
            )
        else:
            response, body = client.request(
                "POST", "/change", sid, data={"csrf_token": bad}
            )
        assert response.code == 403, name
        assert body == FORBIDDEN, name
    assert client.stored(sid) is None
    assert "change" not in client.app.calls


def test_aTokenInTheURLIsRefused(client: Client) -> None:
    sid, token = client.token()
    response, body = client.request("POST", f"/change?csrf_token={token}", sid)
    assertRefused(client, response, body, sid)


@pytest.mark.parametrize("inURL", ["token", "junk"])
def test_aTokenInTheURLIsRefusedBesideAValidHeader(client: Client, inURL: str) -> None:
    """
    A token in the URL is refused even when the header carries a valid one:
    the URL has already put it in logs and Referer headers.  (Before the
    fix, the header was read first and the request went through.)
    """
    sid, token = client.token()
    query = token if inURL == "token" else "junk"
    response, body = client.request(
        "POST", f"/change?csrf_token={query}", sid, {"X-CSRF-Token": token}
    )
    assertRefused(client, response, body, sid)


@pytest.mark.parametrize(
    "query", ["a=%ff", "a=%", "%ff=1", "a=\xe9", "csrf%5Ftoken=x", "x;csrf_token"]
)
def test_anyQueryStringIsReadWithoutA500(client: Client, query: str) -> None:
    """
    Whatever the URL holds, the check answers: 200 with the token in the
    body, 403 when the query string also names the field.
    """
    sid, token = client.token()
    response, _ = client.request(
        "POST", "/change?" + query, sid, data={"csrf_token": token}
    )
    refused = "csrf" in query
    assert response.code == (403 if refused else 200)


# No live session


def test_anUnsafeRequestWithoutASessionIsRefused(client: Client) -> None:
    _, token = client.token()
    response, body = client.request("POST", "/change", None, {"X-CSRF-Token": token})
    assertRefused(client, response, body, None)


def test_anUnsafeRequestWithAnUnknownSessionIsRefused(client: Client) -> None:
    _, token = client.token()
    response, body = client.request(
        "POST", "/change", "x" * 43, {"X-CSRF-Token": token}
    )
    assertRefused(client, response, body, None)


def test_aSessionThatHandedOutNoTokenIsRefused(client: Client) -> None:
    sid, _ = client.token()
    response, _ = client.request("GET", "/clear", sid)
    response, body = client.request("POST", "/change", sid, {"X-CSRF-Token": "A" * 86})
    assertRefused(client, response, body, sid)


# Fetch metadata and Origin


def test_aCrossSiteRequestIsRefusedEvenWithAToken(client: Client) -> None:
    sid, token = client.token()
    response, body = client.request(
        "POST", "/change", sid, {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}
    )
    assertRefused(client, response, body, sid)


@pytest.mark.parametrize("site", ["same-origin", "same-site", "none"])
def test_aSameSiteRequestWithATokenPasses(client: Client, site: str) -> None:
    sid, token = client.token()
    response, _ = client.request(
        "POST", "/change", sid, {"X-CSRF-Token": token, "Sec-Fetch-Site": site}
    )
    assert response.code == 200


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://example.com",  # another scheme
        "http://example.com:8080",  # another port
        "http://example.com.evil.example",
        "null",
        "http://exämple.com",
        "not an origin",
    ],
)
def test_aForeignOriginIsRefusedEvenWithAToken(client: Client, origin: str) -> None:
    sid, token = client.token()
    response, body = client.request(
        "POST", "/change", sid, {"X-CSRF-Token": token, "Origin": origin.encode()}
    )
    assertRefused(client, response, body, sid)


@pytest.mark.parametrize(
    "origin",
    ["http://example.com", "HTTP://Example.COM:80", "https://app.example.com:443"],
)
def test_theOwnOrTrustedOriginPasses(client: Client, origin: str) -> None:
    sid, token = client.token()
    response, _ = client.request(
        "POST", "/change", sid, {"X-CSRF-Token": token, "Origin": origin}
    )
    assert response.code == 200


@pytest.mark.parametrize(
    "origin, passes",
    [
        ("https://app.example.com", True),
        (None, False),
        ("http://example.com", False),  # its own origin cannot be cross-site
        ("http://evil.example", False),
    ],
)
def test_aCrossSiteRequestPassesOnlyFromATrustedOrigin(
    client: Client, origin: str | None, passes: bool
) -> None:
    """
    Browsers send C{Sec-Fetch-Site: cross-site} with every request from
    another site, a trusted origin's included: such a request passes, with
    its token, when its C{Origin} is trusted, and only then (helper-41:
    trusted origins on another site were always refused).
    """
    sid, token = client.token()
    headers: dict[str, str | bytes] = {
        "X-CSRF-Token": token,
        "Sec-Fetch-Site": "cross-site",
    }
    if origin is not None:
        headers["Origin"] = origin
    response, body = client.request("POST", "/change", sid, headers)
    if passes:
        assert response.code == 200
    else:
        assertRefused(client, response, body, sid)


# Opting out


def test_anExemptRouteTakesUnsafeRequestsWithoutAToken(client: Client) -> None:
    response, body = client.request("POST", "/hook")
    assert (response.code, body) == (200, b"hooked")
    assert client.app.calls == ["hook"]


def test_anExemptPathCoversWholeSegmentsOnly(sessions: Sessions) -> None:
    app = App(sessions)
    client = Client(app, app.wrapped)
    for path in ["/hookshot", "/hook/../change", "/change"]:
        response, _ = client.request("POST", path)
        assert response.code == 403, path


def test_anExemptLeafResourceIsNotChecked(sessions: Sessions) -> None:
    root = Resource()
    hook = Resource()
    hook.render_POST = lambda request: b"hooked"  # type: ignore[attr-defined]
    root.putChild(b"hook", csrfExempt(hook))
    other = Resource()
    other.render_POST = lambda request: b"other"  # type: ignore[attr-defined]
    root.putChild(b"other", other)
    app = App(sessions)
    client = Client(app, sessions.wrap(CSRFResource(sessions, root)))
    response, body = client.request("POST", "/hook")
    assert (response.code, body) == (200, b"hooked")
    response, body = client.request("POST", "/other")
    assert (response.code, body) == (403, FORBIDDEN)


def test_theWrapperAnswers503WhenTheSessionCannotBeLoaded(
    sessions: Sessions, db: Any
) -> None:
    app = App(sessions)
    client = Client(app, app.wrapped)
    sid, token = client.token()
    # Outside Sessions.wrap, the wrapper itself starts the session.
    root = Resource()
    root.putChild(b"change", Resource())
    client = Client(app, CSRFResource(sessions, root))
    db.failLoads = True
    response, _ = client.request("POST", "/change", sid, {"X-CSRF-Token": token})
    assert response.code == 503


def test_theDecoratorNeedsTheSession() -> None:
    from twisted.web.test.requesthelper import DummyRequest

    handler = protect(lambda request: "never")
    with pytest.raises(TypeError, match="below Sessions.withSession"):
        handler(DummyRequest([b""]))


# The parts


def test_checkWithoutASessionRefuses() -> None:
    from twisted.web.test.requesthelper import DummyRequest

    request: Any = DummyRequest([b""])
    request.method = b"POST"
    assert check(request, None) == "no live session"


def test_checkRefusesANewSessionEvenWithItsOwnToken() -> None:
    """
    A session this request started is no live session, whatever it holds.
    """
    from twisted.web.test.requesthelper import DummyRequest

    from tests.test_session import new

    session = new()
    request: Any = DummyRequest([b""])
    request.method = b"POST"
    request.requestHeaders.setRawHeaders(b"x-csrf-token", [csrfToken(session).encode()])
    assert check(request, session) == "no live session"
    session.isNew = False
    assert check(request, session) is None


def test_settingsRefuseMalformedOrigins() -> None:
    with pytest.raises(ValueError, match="not an origin"):
        CSRFSettings(trustedOrigins=["example.com"])
    with pytest.raises(ValueError, match="list of origins"):
        CSRFSettings(trustedOrigins="https://example.com")
    with pytest.raises(ValueError, match="starts with '/'"):
        CSRFSettings(exemptPaths=["hook"])
    assert parseOrigin("HTTPS://Example.com") == ("https", "example.com", 443)


# On a real port


@pytest_twisted.ensureDeferred
async def test_onARealPortAFormWithItsTokenPassesAndWithoutIsRefused(
    listen: Any,
) -> None:
    from twisted.internet import reactor

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(reactor))
    app = App(sessions)
    base, http = listen(app.wrapped)
    response = await http.get(base + "/form")
    token = (await treq.text_content(response)).strip()
    sid = cookieValue(response, COOKIE)
    cookies = {COOKIE: sid}
    refused = await http.post(base + "/change", data={"x": "1"}, cookies=cookies)
    assert refused.code == 403
    assert await refused.content() == FORBIDDEN
    accepted = await http.post(
        base + "/change", data={"csrf_token": token}, cookies=cookies
    )
    assert accepted.code == 200
    assert await accepted.content() == b"changed"
    assert app.calls == ["form", "change"]
