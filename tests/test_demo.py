"""
The Iris document's curl transcript, against the demo in memory, the twistd
plugin and examples/sessions.py.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import pytest
import pytest_twisted

from tests.processes import Server, twistd
from tests.support import Browser, cookieValue, plainClient, setCookies
from txsessions import Sessions
from txsessions.csrf import FORBIDDEN
from txsessions.demo import COOKIE, demoApp, demoConfig

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")


def test_transcriptInMemory(clock: Any) -> None:
    sessions = Sessions(demoConfig(), clock=clock)
    browser = Browser(demoApp(sessions).resource(), "http://localhost:8080")
    response, body = browser.get("/secret")
    assert (response.code, body) == (403, b"Forbidden\n")
    response, body = browser.request("HEAD", "/login")
    assert body == b""
    sid = cookieValue(response, COOKIE)
    assert browser.get("/secret", {COOKIE: sid})[1] == b"The cake is a lie!\n"
    response, _ = browser.get("/logout", {COOKIE: sid})
    assert setCookies(response)[0].startswith(f"{COOKIE}=;")
    response, body = browser.get("/secret", {COOKIE: sid})
    assert (response.code, body) == (403, b"Forbidden\n")


async def transcript(base: str, client: Any) -> None:
    """
    The curl transcript of the Iris document, and the logout after it.
    """
    response = await client.get(base + "/secret")
    assert response.code == 403
    assert await response.text() == "Forbidden\n"
    response = await client.head(base + "/login")
    await response.content()
    [header] = setCookies(response)
    assert header.startswith(f"{COOKIE}=")
    for attribute in ("; Path=/", "; HttpOnly", "; SameSite=Lax"):
        assert attribute in header
    sid = cookieValue(response, COOKIE)
    response = await client.get(base + "/secret", cookies={COOKIE: sid})
    assert response.code == 200
    assert await response.text() == "The cake is a lie!\n"
    response = await client.get(base + "/logout", cookies={COOKIE: sid})
    await response.content()
    response = await client.get(base + "/secret", cookies={COOKIE: sid})
    assert response.code == 403
    assert await response.text() == "Forbidden\n"


@pytest_twisted.ensureDeferred
async def test_transcriptOverARealPort(listen: Any) -> None:
    sessions = Sessions(demoConfig())
    try:
        base, http = listen(demoApp(sessions).resource())
        await transcript(base, http)
    finally:
        await sessions.close()


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(
            [
                twistd(),
                "-n",
                "--pidfile=",
                "txsessions",
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ],
            id="twistd",
        ),
        pytest.param(
            [
                sys.executable,
                os.path.join(EXAMPLES, "sessions.py"),
                "tcp:0:interface=127.0.0.1",
            ],
            id="example",
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_transcriptAgainstTheRealServer(argv: list[str], tmp_path: Any) -> None:
    server = Server(argv, str(tmp_path))
    try:
        base = await server.start()
        await transcript(base, plainClient())
    finally:
        await server.stop()


def homeBrowser(clock: Any) -> tuple[Sessions, Browser]:
    sessions = Sessions(demoConfig(), clock=clock)
    return sessions, Browser(demoApp(sessions).resource())


def formToken(browser: Browser, cookies: dict[str, str]) -> tuple[dict[str, str], str]:
    """
    GET the home page, as a browser does before it submits one of its forms.

    @return: the cookies to send with the form (the page may have started
        the session), and the CSRF token of its form.
    """
    response, body = browser.get("/", cookies)
    match = re.search(rb'name="csrf_token" value="([A-Za-z0-9_-]+)"', body)
    assert match is not None, body
    if setCookies(response):
        cookies = {COOKIE: cookieValue(response, COOKIE)}
    return cookies, match.group(1).decode()


def post(
    browser: Browser, path: str, cookies: dict[str, str] | None = None
) -> tuple[Any, bytes]:
    """
    Submit one of the home page's forms, with its token, as a browser does.
    """
    cookies, token = formToken(browser, cookies or {})
    return browser.request("POST", path, cookies, {b"x-csrf-token": [token.encode()]})


def test_homePageLogsInAndOutWithNotices(clock: Any) -> None:
    _, browser = homeBrowser(clock)
    _, body = browser.get("/")
    assert b"You are not logged in." in body
    assert b'id="login"' in body and b'name="user"' in body
    assert b'id="logout"' not in body and b'id="secret"' not in body
    response, _ = post(browser, "/login?user=alice")
    assert response.code == 303
    assert response.headers.getRawHeaders("location") == ["/"]
    cookie = {COOKIE: cookieValue(response, COOKIE)}
    _, body = browser.get("/", cookie)
    assert b"You are logged in as alice." in body
    assert b"Welcome, alice! You logged in." in body
    assert b'id="logout"' in body and b'id="secret"' in body
    assert b'id="login"' not in body
    _, body = browser.get("/", cookie)
    assert b"Welcome" not in body
    response, _ = post(browser, "/logout", cookie)
    fresh = {COOKIE: cookieValue(response, COOKIE)}
    assert fresh != cookie
    _, body = browser.get("/", fresh)
    assert b"You are not logged in." in body and b"You logged out." in body
    assert browser.get("/secret", cookie)[0].code == 403


def test_theFormsCarryATokenAndAPostWithoutOneIsRefused(clock: Any) -> None:
    """
    The demo checks CSRF: its forms carry the session's token, and a POST
    to them without it is refused with a 403 that logs nobody in or out.
    """
    _, browser = homeBrowser(clock)
    cookies, _ = formToken(browser, {})
    response, body = browser.request("POST", "/login?user=mallory", cookies)
    assert (response.code, body) == (403, FORBIDDEN)
    response, _ = post(browser, "/login?user=alice", cookies)
    cookies = {COOKIE: cookieValue(response, COOKIE)}
    _, body = browser.get("/", cookies)
    assert b"You are logged in as alice." in body
    # The logout form, and "log out the others" (the owners section).
    assert body.count(b'name="csrf_token"') == 2
    response, body = browser.request("POST", "/logout", cookies)
    assert (response.code, body) == (403, FORBIDDEN)
    assert browser.get("/secret", cookies)[1] == b"The cake is a lie!\n"


def test_everyFormOfAPageCarriesTheTokenTakenInItsHandler(clock: Any) -> None:
    """
    The home page takes one CSRF token, in its handler, for all its forms:
    the owners section's "log out the others" too, rendered later.
    """
    _, browser = homeBrowser(clock)
    response, _ = post(browser, "/login?user=alice")
    _, body = browser.get("/", {COOKIE: cookieValue(response, COOKIE)})
    tokens = re.findall(rb'name="csrf_token" value="([^"]+)"', body)
    assert len(tokens) == 2 and tokens[0] == tokens[1]


def test_aLoginWithoutAUserNameIsRefusedWithANotice(clock: Any) -> None:
    sessions, browser = homeBrowser(clock)
    for path in ("/login", "/login?user=%20%20"):
        cookie, token = formToken(browser, {})
        response, _ = browser.request(
            "POST", path, cookie, {b"x-csrf-token": [token.encode()]}
        )
        assert response.code == 303
        _, body = browser.get("/", cookie)
        assert b"Enter a user name to log in." in body
        assert b"You are not logged in." in body


def test_theUserNameIsEscapedAndBounded(clock: Any) -> None:
    _, browser = homeBrowser(clock)
    response, _ = post(browser, "/login?user=%3Cb%3E" + "x" * 100)
    _, body = browser.get("/", {COOKIE: cookieValue(response, COOKIE)})
    assert b"<b>" not in body
    assert b"&lt;b&gt;" + b"x" * 61 + b"." in body


@pytest.mark.parametrize("name", ["%00", "al%00ice", "%0A", "al%0Dice"])
def test_aUserNameLosesItsControlCharacters(clock: Any, name: str) -> None:
    """
    A NUL or a line break in the user name is dropped, not a 500 (the
    owner refused the NUL: helper-46); a name of nothing else is refused
    with the notice an empty one gets.
    """
    _, browser = homeBrowser(clock)
    cookie, token = formToken(browser, {})
    response, _ = browser.request(
        "POST", "/login?user=" + name, cookie, {b"x-csrf-token": [token.encode()]}
    )
    assert response.code == 303
    if "ice" in name:  # logged in: a new id
        cookie = {COOKIE: cookieValue(response, COOKIE)}
    _, body = browser.get("/", cookie)
    if "ice" in name:
        assert b"Welcome, alice!" in body
    else:
        assert b"Enter a user name to log in." in body


def htmlGet(browser: Browser, path: str, cookies: dict[str, str]) -> Any:
    return browser.request("GET", path, cookies, {b"accept": [b"text/html,*/*"]})


def test_aBrowserGetsTheSecretAsAPageWithAWayBack(clock: Any) -> None:
    _, browser = homeBrowser(clock)
    response, body = htmlGet(browser, "/secret", {})
    assert response.code == 403
    assert b"Forbidden: log in first." in body and b'href="/"' in body
    response, _ = post(browser, "/login?user=bob")
    response, body = htmlGet(
        browser, "/secret", {COOKIE: cookieValue(response, COOKIE)}
    )
    assert response.code == 200
    assert b'<p id="message">The cake is a lie!</p>' in body
    assert b'<a id="home" href="/">' in body
    assert b'name="viewport"' in body


def test_loginRegeneratesTheID(clock: Any) -> None:
    # R12: a session that existed before the login gets a new id at login,
    # its data kept, and the old id is dead at once.
    from tests.support import resultOf

    sessions, browser = homeBrowser(clock)
    planted = Sessions(demoConfig(), sessions.database, clock)
    events: list[Any] = []
    sessions.onDestroy(lambda *a: events.append(a))
    from klein import Klein

    app = Klein()

    @app.route("/visit")
    @planted.withSession
    def visit(request: Any, session: Any) -> str:
        session.set("cart", ["book"])
        return ""

    response, _ = Browser(app.resource()).get("/visit")
    before = cookieValue(response, COOKIE)
    response, _ = browser.request("HEAD", "/login", {COOKIE: before})
    after = cookieValue(response, COOKIE)
    assert after != before
    assert browser.get("/secret", {COOKIE: after})[1] == b"The cake is a lie!\n"
    assert browser.get("/secret", {COOKIE: before})[0].code == 403
    assert [reason.value for _, reason in events] == ["regenerated"]
    assert resultOf(sessions.count()) == 1
