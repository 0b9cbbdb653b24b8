from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.web.http_headers import Headers

from txsessions._hold import UNAVAILABLE, HeldResponse


class FakeTransport:
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class FakeChannel:
    def __init__(self) -> None:
        self.transport = FakeTransport()


class FakeRequest:
    """
    Records what reaches the real write and finish.
    """

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.startedWriting = False
        self._disconnected = False
        self.code = 200
        self.code_message = b"OK"
        self.finished = False
        self.responseHeaders = Headers()
        self.channel = FakeChannel()

    def write(self, data: bytes) -> None:
        self.startedWriting = True
        self.log.append(data)

    def finish(self) -> None:
        if not self.startedWriting:
            self.write(b"")
        self.log.append("finished")

    def setResponseCode(self, code: int) -> None:
        self.code = code


class Commits:
    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.answers: list[Deferred[None] | None] = []

    def __call__(self, headersSent: bool) -> Deferred[None] | None:
        self.calls.append(headersSent)
        return self.answers.pop(0) if self.answers else None


class Held(HeldResponse):
    """
    A held response whose commit is a given callable.
    """

    def __init__(self, request: Any, commit: Callable[[bool], Any]) -> None:
        super().__init__(request)
        self.given = commit

    def commit(self, headersSent: bool) -> Any:
        return self.given(headersSent)


def held() -> tuple[FakeRequest, Commits]:
    request, commits = FakeRequest(), Commits()
    Held(request, commits)
    return request, commits


def test_nothingToSavePassesStraightThrough() -> None:
    request, commits = held()
    request.write(b"a")
    request.write(b"b")
    request.finish()
    assert request.log == [b"a", b"b", "finished"]
    assert commits.calls == [False, True]


def test_releaseGivesBackAHookOfSomeoneElses() -> None:
    """
    A request whose C{write} and C{finish} someone else replaced before the
    session was attached keeps their replacements once the held response
    steps aside: the response still goes through them.
    """
    request = FakeRequest()
    theirs: list[Any] = []
    original = request.write, request.finish

    def write(data: bytes) -> None:
        theirs.append(data)
        original[0](data)

    def finish() -> None:
        theirs.append("finish")
        original[1]()

    request.write = write  # type: ignore[method-assign]
    request.finish = finish  # type: ignore[method-assign]
    hold = Held(request, Commits())
    hold.release()
    request.write(b"a")
    request.finish()
    assert theirs == [b"a", "finish"]
    assert request.log == [b"a", "finished"]


def test_finishWithoutWritesCommitsOnce() -> None:
    request, commits = held()
    request.finish()
    assert request.log == [b"", "finished"]
    assert commits.calls == [False]


def test_firstWriteWaitsForTheSave() -> None:
    request, commits = held()
    saving: Deferred[None] = Deferred()
    commits.answers = [saving]
    request.write(b"a")
    request.write(b"b")
    request.finish()
    assert request.log == []
    saving.callback(None)
    assert request.log == [b"ab", "finished"]
    assert commits.calls == [False, True]


def test_finishWaitsForTheLastSave() -> None:
    request, commits = held()
    saving: Deferred[None] = Deferred()
    commits.answers = [None, saving]
    request.write(b"a")
    request.finish()
    assert request.log == [b"a"]
    saving.callback(None)
    assert request.log == [b"a", "finished"]


def test_failureBeforeTheHeadersIsA503() -> None:
    request, commits = held()
    commits.answers = [fail(OSError("down"))]
    request.responseHeaders.setRawHeaders(b"Content-Length", [b"5"])
    request.write(b"hello")
    request.finish()
    assert request.code == 503
    assert request.log == [UNAVAILABLE, "finished"]
    assert request.responseHeaders.getRawHeaders(b"Content-Length") == [
        b"%d" % len(UNAVAILABLE)
    ]


def test_failureAfterTheHeadersAbortsTheConnection() -> None:
    request, commits = held()
    commits.answers = [None, fail(OSError("down"))]
    request.write(b"hello")
    request.finish()
    assert request.channel.transport.aborted
    assert request.log == [b"hello"]


def test_commitThatRaisesIsAFailure() -> None:
    request = FakeRequest()

    def commit(headersSent: bool) -> None:
        raise ValueError("bug")

    Held(request, commit)
    request.finish()
    assert request.code == 503


def test_disconnectedClientIsNotFinished() -> None:
    request, commits = held()
    saving: Deferred[None] = Deferred()
    commits.answers = [saving]
    request.finish()
    request._disconnected = True
    saving.callback(None)
    assert request.log == []


def test_finishTwiceCommitsOnce() -> None:
    request, commits = held()
    commits.answers = [succeed(None)]
    request.finish()
    request.finish()
    assert commits.calls == [False]
    assert request.log == [b"", "finished"]


def test_theTwistedInternalsItReliesOnAreThere() -> None:
    # Fails when a Twisted release drops or renames one: see _hold's
    # docstring for what each is for and how _hold falls back.
    from txsessions._hold import twistedInternals

    assert twistedInternals() == dict.fromkeys(twistedInternals(), True)


@pytest.mark.parametrize("internals", [True, False])
def test_markPrivateWithOrWithoutHeadersInternals(
    monkeypatch: pytest.MonkeyPatch, internals: bool
) -> None:
    # The fast path writes what the public API would; without the private
    # dict (another Twisted), the public API is used.
    from twisted.web.test.requesthelper import DummyRequest

    from txsessions import _hold
    from txsessions.cookies import markPrivate

    if not internals:
        monkeypatch.setattr(_hold, "_KEYS", None)
    request: Any = DummyRequest([b""])
    markPrivate(request)
    headers = request.responseHeaders
    assert headers.getRawHeaders(b"vary") == [b"Cookie"]
    assert headers.getRawHeaders(b"cache-control") == [b"private"]
    assert sorted(headers.getAllRawHeaders())[0][0] == b"Cache-Control"


def test_isSecureAnswersAsTwistedOncePerTransport() -> None:
    # The channel's answer is kept while its transport stays the same; a
    # new transport, or setHost(ssl=True), is answered afresh.
    from twisted.internet.interfaces import ISSLTransport
    from twisted.internet.testing import StringTransport
    from twisted.web.http import HTTPChannel, Request
    from zope.interface import directlyProvides

    from txsessions._hold import isSecure

    channel = HTTPChannel()
    channel.makeConnection(StringTransport())
    request: Any = Request(channel)
    assert isSecure(request) is request.isSecure() is False
    assert isSecure(request) is False
    tls = StringTransport()
    directlyProvides(tls, ISSLTransport)
    channel.transport = tls
    assert isSecure(request) is request.isSecure() is True
    other = HTTPChannel()
    other.makeConnection(StringTransport())
    plain: Any = Request(other)
    assert isSecure(plain) is False
    plain.setHost(b"example.com", 443, ssl=True)
    assert isSecure(plain) is plain.isSecure() is True


def test_isSecureAsksARequestThatAnswersForItself() -> None:
    """
    A request whose C{isSecure} is its own (set on it, as Twisted's
    C{VHostMonsterResource} does behind a TLS proxy, or a subclass's), or
    whose channel's is, is asked: the per-connection answer is Twisted's
    alone.  (Before, the channel's cached answer was given, and a session
    behind VHostMonster got no C{Secure} cookie.)
    """
    from twisted.internet.testing import StringTransport
    from twisted.web.http import HTTPChannel, Request

    from txsessions._hold import isSecure

    class BehindTLS(Request):
        def isSecure(self) -> bool:
            return True

    channel = HTTPChannel()
    channel.makeConnection(StringTransport())
    plain: Any = Request(channel)
    assert isSecure(plain) is False  # the channel's answer is kept
    vhost: Any = Request(channel)
    vhost.setHost(b"example.com", 443)  # as VHostMonsterResource does
    vhost.isSecure = lambda: 1
    assert isSecure(vhost) is True
    behind: Any = BehindTLS(channel)
    assert isSecure(behind) is True
    channel.isSecure = lambda: True  # type: ignore[method-assign]
    again: Any = Request(channel)
    assert isSecure(again) is True


def test_aSessionBehindVHostMonsterGetsASecureCookie() -> None:
    """
    Behind a TLS-terminating proxy that passes through Twisted's
    C{VHostMonsterResource}, the session cookie carries C{Secure}, and a
    C{__Host-} cookie's session is saved.
    """
    from twisted.web.resource import Resource
    from twisted.web.vhost import VHostMonsterResource

    import txsessions
    from tests.support import Browser, setCookies
    from txsessions import Config, Sessions
    from txsessions.db.memory import MemoryDatabase

    class Login(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            txsessions.get(request).set("user", "alice")
            return b"ok"

    for name in ("sid", "__Host-sid"):
        sessions = Sessions(Config(cookie=name), MemoryDatabase())
        root = Resource()
        root.putChild(b"vhost", VHostMonsterResource())
        root.putChild(b"login", Login())
        browser = Browser(sessions.wrap(root), "http://127.0.0.1:8080")
        response, body = browser.get("/vhost/https/example.com:443/login")
        assert body == b"ok"
        [cookie] = setCookies(response)
        assert cookie.startswith(name + "=") and "; Secure" in cookie
