"""
Immutable values.
"""

from __future__ import annotations

import pytest

from tests.test_session import loaded
from txsessions import ImmutableValueError
from txsessions.session import takeChanges


def test_readersGetACopy() -> None:
    session = loaded()
    session.setImmutable("roles", ["user"])
    session.get("roles").append("admin")
    session.getAll()["roles"].append("admin")
    session.visit(lambda k, v: v.append("admin"))
    assert session.get("roles") == ["user"]


def test_theStoredValueIsACopyToo() -> None:
    session = loaded()
    roles = ["user"]
    session.setImmutable("roles", roles)
    roles.append("admin")
    assert session.get("roles") == ["user"]


def test_setRaises() -> None:
    # Iris ignores the set silently.
    session = loaded()
    session.setImmutable("k", 1)
    with pytest.raises(ImmutableValueError, match="setImmutable"):
        session.set("k", 2)
    assert session.get("k") == 1
    with pytest.raises(ImmutableValueError):
        session.increment("k")


def test_setImmutableOverwrites() -> None:
    session = loaded()
    session.setImmutable("k", 1)
    session.setImmutable("k", 2)
    assert session.get("k") == 2


def test_deleteAndClearRemove() -> None:
    session = loaded()
    session.setImmutable("a", 1)
    assert session.delete("a") is True
    session.set("a", 2)
    assert session.get("a") == 2
    session.setImmutable("b", 1)
    session.clear()
    session.set("b", 3)
    assert session.getAll() == {"b": 3}


def test_immutabilityIsStored() -> None:
    session = loaded()
    session.setImmutable("k", {"a": 1})
    changes = takeChanges(session)
    assert changes.updated == {"k": '{"a":1}', "\x00ik": "true"}
    session.delete("k")
    assert takeChanges(session).deleted == {"k", "\x00ik"}


def test_loadedImmutableStaysImmutable() -> None:
    from tests.test_session import Owner
    from txsessions import Session
    from txsessions.interfaces import Lifetime

    fields = {"k": "[1]", "\x00ik": "true"}
    session = Session(Owner(), "x" * 43, "key", Lifetime(0), fields)  # type: ignore[arg-type]
    with pytest.raises(ImmutableValueError):
        session.set("k", 2)
    session.get("k").append(2)
    assert session.get("k") == [1]


def test_anImmutableStaysImmutableWhenARegenerateLosesTheRace() -> None:
    """
    A request that set an immutable value again, then regenerated the
    session after another request had: it carries on with a new session
    holding what it wrote, the value still immutable there (helper-28: a
    later set() replaced it).
    """
    from klein import Klein
    from twisted.internet.defer import Deferred
    from twisted.web.iweb import IRequest

    from txsessions import Config, Session
    from txsessions.testing import SessionsKit

    kit = SessionsKit(Config(cookie="sid"))
    app = Klein()
    gate: Deferred[None] = Deferred()

    @app.route("/init")
    @kit.sessions.withSession
    def init(request: IRequest, session: Session) -> str:
        session.setImmutable("role", "user")
        return "ok"

    @app.route("/a")
    @kit.sessions.withSession
    async def a(request: IRequest, session: Session) -> str:
        session.setImmutable("role", "admin")
        await gate
        await session.regenerate()  # after /b did: a new session
        return "ok"

    @app.route("/b")
    @kit.sessions.withSession
    async def b(request: IRequest, session: Session) -> str:
        await session.regenerate()
        return "ok"

    @app.route("/c")
    @kit.sessions.withSession
    def c(request: IRequest, session: Session) -> str:
        try:
            session.set("role", "hacker")
        except ImmutableValueError:
            return "refused " + str(session.get("role"))
        return "accepted"

    browser = kit.browser(app)
    browser.get("/init")
    pending = browser.send("GET", "/a")
    assert browser.get("/b").code == 200
    gate.callback(None)
    assert kit.result(pending).code == 200
    assert browser.get("/c").text == "refused admin"
