"""
Tests for the CSRF check wired into the request path by C{Config(csrf=True)}
(L{txsessions.web}): what tests/test_csrf.py does not cover by running its
cases under L{Sessions.wrap} and L{Sessions.withSession} alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from klein import Klein
from treq.testing import StubTreq
from twisted.web.iweb import IRequest

import txsessions
from tests.support import COOKIE, ControlledDatabase, cookieValue, resultOf
from txsessions import Config, Session, Sessions
from txsessions.csrf import FORBIDDEN, CSRFSettings

WAYS = ["wrap", "withSession"]


class Served:
    """
    A Klein app with a form and a change, under C{Sessions.wrap} alone or
    under C{Sessions.withSession} alone, on a database whose loads the test
    releases.  C{calls} records every handler that ran.
    """

    def __init__(
        self, clock: Any, way: str, csrf: bool = True, proxied: bool = False
    ) -> None:
        self.database = ControlledDatabase(clock)
        config = Config(cookie=COOKIE, csrf=csrf, trustProxyHeaders=proxied)
        self.sessions = Sessions(config, self.database, clock)
        self.calls: list[str] = []
        app = Klein()
        calls = self.calls
        if way == "wrap":

            @app.route("/form")
            def form(request: IRequest) -> str:
                return txsessions.get(request).csrfToken()

            @app.route("/change", methods=["POST"])
            def change(request: IRequest) -> str:
                calls.append("change")
                txsessions.get(request).set("changed", True)
                return "changed"

            self.resource: Any = self.sessions.wrap(app.resource())
        else:

            @app.route("/form")
            @self.sessions.withSession
            def dform(request: IRequest, session: Session) -> str:
                return session.csrfToken()

            @app.route("/change", methods=["POST"])
            @self.sessions.withSession
            def dchange(request: IRequest, session: Session) -> str:
                calls.append("change")
                session.set("changed", True)
                return "changed"

            self.resource = app.resource()

    def request(
        self,
        method: str,
        path: str,
        sid: str | None,
        data: Any = None,
        headers: dict[str, list[str]] | None = None,
    ) -> tuple[Any, bytes]:
        """
        Make a request, releasing every load the database holds.
        """
        stub: Any = StubTreq(self.resource)
        d = stub.request(
            method,
            "http://example.com" + path,
            cookies={COOKIE: sid} if sid else {},
            data=data,
            headers=headers or {},
        )
        stub.flush()
        while self.database.heldLoads:
            self.database.heldLoads.pop(0)()
            stub.flush()
        response = resultOf(d)
        return response, resultOf(response.content())


@pytest.mark.parametrize("way", WAYS)
def test_checkedWhenTheSessionLoadsLater(clock: Any, way: str) -> None:
    """
    The check runs on the path where the database answers later too.
    """
    served = Served(clock, way)
    response, body = served.request("GET", "/form", None)
    sid, token = cookieValue(response, COOKIE), body.decode()
    served.database.holdLoads = True
    response, body = served.request("POST", "/change", sid)
    assert (response.code, body) == (403, FORBIDDEN)
    assert served.calls == []
    response, body = served.request("POST", "/change", sid, {"csrf_token": token})
    assert (response.code, body) == (200, b"changed")
    assert served.calls == ["change"]


@pytest.mark.parametrize("way", WAYS)
def test_offByDefault(clock: Any, way: str) -> None:
    """
    Without C{csrf=True} nothing is checked, as before.
    """
    assert Config().csrf is False
    served = Served(clock, way, csrf=False)
    response, body = served.request("POST", "/change", None)
    assert (response.code, body) == (200, b"changed")


def test_csrfSettingsMustBeCSRFSettings() -> None:
    """
    C{csrfSettings} takes a L{CSRFSettings}; anything else fails at once.
    """
    assert Config(csrfSettings=CSRFSettings()).csrfSettings == CSRFSettings()
    with pytest.raises(TypeError):
        Config(csrfSettings={"trustedOrigins": []})  # type: ignore[arg-type]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("proxied", [True, False])
def test_trustProxyHeadersIsTrustedForTheOrigin(
    clock: Any, way: str, proxied: bool
) -> None:
    """
    Behind a TLS-terminating proxy (C{Config(trustProxyHeaders=True)}), the
    request's own origin is https, as the browser's C{Origin} says; without
    it the same request is refused.
    """
    served = Served(clock, way, proxied=proxied)
    response, body = served.request("GET", "/form", None)
    sid, token = cookieValue(response, COOKIE), body.decode()
    response, body = served.request(
        "POST",
        "/change",
        sid,
        {"csrf_token": token},
        {"Origin": ["https://example.com"], "X-Forwarded-Proto": ["https"]},
    )
    assert (response.code, body) == ((200, b"changed") if proxied else (403, FORBIDDEN))


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(
    "forwarded", [["https, http"], [" HTTPS ,http"], ["https", "http"]]
)
def test_aProxyChainIsJudgedByItsFirstHopAsTheCookieIs(
    clock: Any, way: str, forwarded: list[str]
) -> None:
    """
    Behind a chain of proxies, C{X-Forwarded-Proto} lists every hop, the
    client's first: C{https, http} makes the request secure for the CSRF
    check's own origin as for the cookie's C{Secure} flag, so a same-origin
    POST from https is let through.
    """
    served = Served(clock, way, proxied=True)
    headers = {"X-Forwarded-Proto": forwarded}
    response, body = served.request("GET", "/form", None, headers=headers)
    cookie = response.headers.getRawHeaders("Set-Cookie")[0]
    assert "; Secure" in cookie
    sid, token = cookieValue(response, COOKIE), body.decode()
    headers["Origin"] = ["https://example.com"]
    response, body = served.request(
        "POST", "/change", sid, {"csrf_token": token}, headers
    )
    assert (response.code, body) == (200, b"changed")
