"""
The held response at its edges (helper-45's review): a regenerate while the
first write is held, a failed save under gzip, a client leaving during an
awaited call, a nested handler's failed save, a write after finish.
"""

from __future__ import annotations

import gc
from typing import Any, cast

import pytest
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import EncodingResourceWrapper
from twisted.web.server import NOT_DONE_YET, GzipEncoderFactory, Site

import txsessions
from tests.apps import kvBrowser
from tests.support import (
    COOKIE,
    Browser,
    ControlledDatabase,
    Leaf,
    get,
    login,
    rawHTTP,
)
from txsessions import Config, Session, Sessions
from txsessions._hold import UNAVAILABLE
from txsessions.errors import SessionError


class QueuedDatabase(ControlledDatabase):
    """
    Renames and destroys wait behind held saves, in order, as over one
    Redis connection or SQLite's writer queue.
    """

    def _queued(self, call: Any) -> Any:
        if not self.holdSaves:
            return call()
        d: Deferred[Any] = Deferred()
        self.heldSaves.append(lambda: call().chainDeferred(d))
        return d

    def rename(self, oldKey: str, newKey: str) -> Any:
        return self._queued(lambda: self.memory.rename(oldKey, newKey))

    def destroy(self, key: str, reason: Any) -> Any:
        return self._queued(lambda: self.memory.destroy(key, reason))


def cookieHeader(sid: str) -> bytes:
    return b"Cookie: " + COOKIE.encode() + b"=" + sid.encode() + b"\r\n"


def test_noRegenerateOnceTheFirstWriteIsHeld(clock: Any) -> None:
    """
    A write held while the session is saved is on its way: C{regenerate}
    raises as it does once the headers are sent, and the old id lives on
    (it had renamed the session and never sent the new id's cookie: the
    client was logged out).
    """
    db = QueuedDatabase(clock)
    sessions = Sessions(Config(cookie=COOKIE, expires=10), db, clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    refused: list[str] = []

    def render(request: IRequest) -> Any:
        session = txsessions.get(request)
        session.set("step", "2")
        request.write(b"welcome ")  # held: the save is under way
        try:
            session.regenerate()
        except SessionError as e:
            refused.append(str(e))
        request.finish()
        return NOT_DONE_YET

    db.holdSaves = True
    transport = rawHTTP(sessions.wrap(Leaf(render)), get(extra=cookieHeader(sid)))
    db.release()
    db.holdSaves = False
    assert refused == ["no regenerate once the response headers are sent"]
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    _, body = browser.get("/get/user", {COOKIE: sid})
    assert body == b'"alice"'


def test_aFailedSaveUnderGzipIsPlainText(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    """
    The 503 of a failed save under an C{EncodingResourceWrapper} goes out as
    the plain text it says it is (it had been gzipped, with no
    C{Content-Encoding}).
    """

    def render(request: IRequest) -> bytes:
        txsessions.get(request).set("a", 1)
        return b"x" * 2000

    db.failSaves = True
    inner = EncodingResourceWrapper(Leaf(render), [GzipEncoderFactory()])
    out = rawHTTP(sessions.wrap(inner), get(extra=b"Accept-Encoding: gzip\r\n"))
    head, body = out.value().split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"Content-Encoding" not in head
    assert body == UNAVAILABLE


@pytest.mark.parametrize("what", ["increment", "regenerate", "destroy"])
def test_aClientLeavingDuringAnAwaitedCallLeavesNoUnhandledError(
    clock: Any, what: str
) -> None:
    """
    A client that goes away while its handler awaits a database call
    cancels the call: no fault of anyone's, and no "Unhandled error in
    Deferred" (the request session had kept the cancellation for a commit
    that never came).
    """
    db = QueuedDatabase(clock)
    sessions = Sessions(Config(cookie=COOKIE, expires=10), db, clock)
    sid = login(kvBrowser(sessions))
    app = Klein()

    @app.route("/")
    @sessions.withSession
    async def handler(request: IRequest, session: Session) -> str:
        if what == "increment":
            await session.increment("n")
        else:
            await getattr(session, what)()
        return "ok"

    events: list[Any] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        db.holdSaves = True
        channel = Site(app.resource()).buildProtocol(None)
        assert channel is not None
        channel.makeConnection(StringTransport())
        channel.dataReceived(get(b"/", cookieHeader(sid)))
        channel.connectionLost(Failure(ConnectionError("the client went away")))
        del channel
        db.release()
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observer)
    unhandled = [e for e in events if "Unhandled error" in str(e.get("log_format"))]
    assert unhandled == []


def test_aNestedHandlersFailedSaveLeavesTheResponseFramed(
    sessions: Sessions, db: ControlledDatabase, browser: Browser
) -> None:
    """
    When a handler called by another cannot save, the 503 it answers sets
    no C{Content-Length}: the outer handler answers the body, and the next
    response on the connection starts where this one ends (it had been
    framed at the inner body's length).
    """
    sid = login(browser)
    app = Klein()

    @sessions.withSession
    def inner(request: IRequest, session: Session) -> str:
        session.set("a", "1")
        return "inner;"

    @app.route("/outer")
    @sessions.withSession
    async def outer(request: IRequest, session: Session) -> str:
        first = inner(request)
        if isinstance(first, Deferred):
            first = await first
        if isinstance(first, bytes):
            first = first.decode()
        return str(first) + "outer"

    db.failSaves = True
    cookie = cookieHeader(sid)
    out = rawHTTP(app.resource(), get(b"/outer", cookie) + get(b"/outer", cookie))
    responses = out.value().split(b"HTTP/1.1 ")[1:]
    assert len(responses) == 2
    for response in responses:
        head, body = response.split(b"\r\n\r\n", 1)
        assert head.startswith(b"503 ")
        assert UNAVAILABLE in body and b"outer" in body
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                assert int(line.split(b":")[1]) == len(body)


def test_aWriteAfterFinishIsDroppedWhenHeld(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    """
    What a handler writes after finishing its response is dropped, held or
    not (held, it had gone out after the response, where the next one on
    the connection begins).
    """

    def render(request: IRequest) -> bytes:
        txsessions.get(request).set("a", 1)
        request.setHeader(b"Content-Length", b"4")
        request.write(b"done")
        request.finish()
        return b"extra"

    db.holdSaves = True
    transport = rawHTTP(sessions.wrap(Leaf(render)), get() + get())
    db.release()
    db.release()
    out = transport.value()
    assert out.count(b"HTTP/1.1 200 ") == 2
    assert b"extra" not in out
