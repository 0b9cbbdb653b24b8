"""
docs/testing.md: tests of examples/myapp.py with txsessions.testing: no
sockets, no sleeps, the clock moved by hand.

    $ python -m pytest -q examples/test_myapp.py
"""

from myapp import CONFIG, makeApp

from txsessions.testing import SessionsKit, StubBrowser


def start() -> tuple[SessionsKit, StubBrowser]:
    kit = SessionsKit(CONFIG)  # a memory database on a Clock at 0
    return kit, kit.browser(makeApp(kit.sessions))  # https://example.com


def test_theSecretNeedsALogin() -> None:
    kit, browser = start()
    assert browser.get("/secret").code == 403
    assert browser.post("/login", data={"user": "alice"}).text == "welcome"
    assert browser.get("/secret").text == "The cake is a lie!\n"


def test_loginGivesANewSessionID() -> None:
    kit, browser = start()
    browser.post("/login", data={"user": "alice"})
    first = browser.sessionID
    browser.post("/login", data={"user": "alice"})
    assert browser.sessionID not in (None, first)


def test_theCookieIsSecureAndHttpOnly() -> None:
    kit, browser = start()
    [cookie] = browser.post("/login", data={"user": "alice"}).setCookies
    assert "; Secure" in cookie and "; HttpOnly" in cookie


def test_aLoginEndsAfterHalfAnHourIdle() -> None:
    kit, browser = start()
    browser.post("/login", data={"user": "alice"})
    kit.advance(29 * 60)
    assert browser.get("/secret").code == 200  # and pushes the end back
    kit.advance(29 * 60)
    assert browser.get("/secret").code == 200
    kit.advance(31 * 60)
    assert browser.get("/secret").code == 403
    assert kit.result(kit.sessions.count()) == 0  # gone from the database too
