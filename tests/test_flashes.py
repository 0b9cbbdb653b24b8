"""
Flash messages, in one session object and across requests.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import COOKIE
from tests.test_session import loaded
from txsessions import ValueNotSerializable
from txsessions.session import takeChanges


def test_setThenReadInTheSameRequest() -> None:
    session = loaded()
    assert not session.hasFlash()
    session.setFlash("msg", "hello")
    assert session.hasFlash()
    assert session.peekFlash("msg") == "hello"
    assert session.getFlash("msg") == "hello"
    assert session.getFlash("msg") == "hello"
    assert session.hasFlash()


def test_missingFlash() -> None:
    session = loaded()
    assert session.getFlash("x") is None
    assert session.peekFlash("x") is None
    assert session.getFlashString("x") == ""
    assert session.getFlashStringDefault("x", "d") == "d"


def test_getFlashStringOfANonString() -> None:
    session = loaded()
    session.setFlash("n", 5)
    assert session.getFlashString("n") == ""
    assert session.getFlashStringDefault("n", "d") == "d"
    assert takeChanges(session).deleted == {"\x00fn"}


def test_flashValuesAreJSON() -> None:
    with pytest.raises(ValueNotSerializable):
        loaded().setFlash("k", object())


def test_deleteAndClearFlashes() -> None:
    session = loaded()
    session.setFlash("a", 1)
    session.setFlash("b", 2)
    session.deleteFlash("a")
    assert session.getFlashes() == {"b": 2}
    session.clearFlashes()
    assert not session.hasFlash()


def test_clearKeepsFlashes() -> None:
    session = loaded(a=1)
    session.setFlash("note", "kept")
    session.clear()
    changes = takeChanges(session)
    assert changes.clear
    assert changes.updated == {"\x00fnote": '"kept"'}


def test_flashesAreStoredFields() -> None:
    session = loaded()
    session.setFlash("note", {"level": "info"})
    assert takeChanges(session).updated == {"\x00fnote": '{"level":"info"}'}
    assert session.getAll() == {}


def test_readFlashIsDeletedWhenTheRequestSaves() -> None:
    session = loaded()
    session.setFlash("a", 1)
    session.setFlash("b", 2)
    takeChanges(session)
    session.getFlash("a")
    session.peekFlash("b")
    assert takeChanges(session).deleted == {"\x00fa"}


def test_setAgainAfterReadingKeepsIt() -> None:
    session = loaded()
    session.setFlash("a", 1)
    takeChanges(session)
    session.getFlash("a")
    session.setFlash("a", 2)
    changes = takeChanges(session)
    assert changes.updated == {"\x00fa": "2"} and not changes.deleted


# Across requests


@pytest.fixture
def flashBrowser(sessions: Any) -> Any:
    from klein import Klein

    from tests.support import Browser

    app = Klein()

    @app.route("/set/<text>")
    @sessions.withSession
    def set(request: Any, session: Any, text: str) -> str:
        session.setFlash("msg", text)
        return "set"

    @app.route("/get")
    @sessions.withSession
    def get(request: Any, session: Any) -> str:
        return json.dumps([session.getFlash("msg"), session.getFlash("msg")])

    @app.route("/peek")
    @sessions.withSession
    def peek(request: Any, session: Any) -> str:
        return json.dumps([session.hasFlash(), session.peekFlash("msg")])

    @app.route("/login")
    @sessions.withSession
    def login(request: Any, session: Any) -> str:
        session.set("user", "alice")
        return "ok"

    return Browser(app.resource())


def sid(browser: Any) -> str:
    from tests.support import cookieValue

    response, _ = browser.get("/login")
    return cookieValue(response, COOKIE)


def test_flashLivesUntilReadThenGoesAtTheNextRequest(flashBrowser: Any) -> None:
    cookie = {COOKIE: sid(flashBrowser)}
    flashBrowser.get("/set/hello", cookie)
    assert json.loads(flashBrowser.get("/peek", cookie)[1]) == [True, "hello"]
    assert json.loads(flashBrowser.get("/peek", cookie)[1]) == [True, "hello"]
    assert json.loads(flashBrowser.get("/get", cookie)[1]) == ["hello", "hello"]
    assert json.loads(flashBrowser.get("/get", cookie)[1]) == [None, None]
    assert json.loads(flashBrowser.get("/peek", cookie)[1]) == [False, None]


def test_flashOnANewSessionCreatesIt(flashBrowser: Any) -> None:
    from tests.support import cookieValue

    response, _ = flashBrowser.get("/set/first")
    cookie = {COOKIE: cookieValue(response, COOKIE)}
    assert json.loads(flashBrowser.get("/get", cookie)[1]) == ["first", "first"]


def test_flashesSurviveARestartOfTheManager(clock: Any, db: Any) -> None:
    from klein import Klein

    from tests.support import Browser
    from txsessions import Config, Sessions

    def app(sessions: Any) -> Any:
        app = Klein()

        @app.route("/set")
        @sessions.withSession
        def set(request: Any, session: Any) -> str:
            session.setFlash("msg", "persisted")
            return ""

        @app.route("/get")
        @sessions.withSession
        def get(request: Any, session: Any) -> str:
            return str(session.getFlash("msg"))

        return Browser(app.resource())

    from tests.support import cookieValue

    first = app(Sessions(Config(cookie=COOKIE), db, clock))
    response, _ = first.get("/set")
    cookie = {COOKIE: cookieValue(response, COOKIE)}
    second = app(Sessions(Config(cookie=COOKIE), db, clock))
    assert second.get("/get", cookie)[1] == b"persisted"


def test_aFlashReadThenClearedStaysRead() -> None:
    session = loaded()
    session.setFlash("m", "hello")
    takeChanges(session)
    assert session.getFlash("m") == "hello"
    session.clear()
    changes = takeChanges(session)
    assert changes.clear and "\x00fm" not in changes.updated


def test_aFlashReadAndRemovedBeforeAClearIsNotWrittenBack() -> None:
    """
    A flash message read, its removal saved mid-request (an increment saves
    at once), is not written back by a later L{Session.clear}: it would be
    shown again on the next request.  One set again after its removal is.
    """
    session = loaded()
    session.setFlash("m", "hello")
    session.setFlash("n", "kept")
    takeChanges(session)
    assert session.getFlash("m") == "hello"
    assert takeChanges(session).deleted == {"\x00fm"}  # the increment's save
    session.clear()
    changes = takeChanges(session)
    assert changes.clear and changes.updated == {"\x00fn": '"kept"'}
    assert session.getFlash("m") == "hello"  # still readable in this request
    session.setFlash("m", "again")
    session.clear()
    assert takeChanges(session).updated == {"\x00fm": '"again"', "\x00fn": '"kept"'}


def test_aFlashKeyThatIsNoStrIsNotSerializable() -> None:
    """
    A flash message under a key that is not a C{str} is refused with
    L{ValueNotSerializable}, as a value's would be (before, a bare
    C{TypeError} from adding it to the field's prefix).
    """
    session = loaded()
    with pytest.raises(ValueNotSerializable):
        session.setFlash(1, "x")  # type: ignore[arg-type]
    assert not session.hasFlash()
