# -*- test-case-name: tests.test_hold,tests.test_web -*-
"""
Holding a response back until its session is saved; the one home of the
Twisted internals txsessions relies on.

Twisted writes a response's headers on its first C{write} and ends it with
C{finish}.  L{HeldResponse} steps in front of both on one request: before the
headers go out the session is saved (so its cookie can still be set), and
the response finishes only once every change is saved, so the client's next
request always sees them.  While a save is under way, writes are buffered.

If the save fails before the headers were sent, the client gets a 503 and no
cookie; if it fails later, the connection is aborted, so that no response
looks complete when its session changes were lost.  When another request
regenerated or destroyed the session first (L{SessionConflictError}), the
client gets a 409 instead of the 503: also when the handler let that
conflict escape, and its response is a 500 (the commit fails with it then).

The contract with Twisted: what this module relies on beyond C{IRequest},
each checked by L{twistedInternals} and by C{tests.test_hold}, which fails
when a Twisted release changes one of them:
  - C{Request.write} and C{Request.finish} are looked up on the instance on
    every call (from the application and from Twisted's own
    C{Request.processingFailed} / C{render}), so instance attributes
    replace them for one request;
  - C{Request.startedWriting}, C{code}, C{code_message},
    C{responseHeaders} and C{cookies} are plain attributes that the first
    C{write} reads to build the headers;
  - C{Request._disconnected} tells that the client went away (no public
    attribute does; without it, a finished response is written anyway,
    which Twisted ignores);
  - C{Headers._rawHeaders}, a dict of header values by name, into which
    L{markPrivateIfBare} writes two headers directly, from which
    L{cookieHeaders} reads the request's cookies, and which L{copyHeaders}
    copies (the key case is found by asking Headers itself; without the
    dict, the public API is used);
  - C{Request._forceSSL} (what C{setHost(..., ssl=True)} sets) and
    C{HTTPChannel.isSecure} asking only whether the channel's transport
    adapts to C{ISSLTransport}: L{isSecure} keeps that answer on the
    channel for as long as its transport stays the same, when neither the
    request nor the channel answers C{isSecure} for itself (without them,
    C{request.isSecure()} is asked every time);
  - C{Request._encoder} and C{twisted.web.resource._IEncodingResource}:
    what C{Request.process} does so that an C{EncodingResourceWrapper}
    (gzip) compresses; without them, a wrapped gzip resource serves
    uncompressed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource as _resource
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from .errors import DatabaseError, SessionConflictError

_log = Logger()

UNAVAILABLE = b"Session storage is unavailable; please try again.\n"

CONFLICT = (
    b"The session was changed by another request at the same time; please try again.\n"
)

_IEncodingResource: Any = getattr(_resource, "_IEncodingResource", None)


def twistedInternals() -> dict[str, bool]:
    """
    @return: for each Twisted internal this module relies on, whether the
        installed Twisted has it.
    """
    return {
        "Request._disconnected": hasattr(Request, "_disconnected"),
        "Request._encoder": hasattr(Request, "_encoder"),
        "resource._IEncodingResource": _IEncodingResource is not None,
        "Request.startedWriting": hasattr(Request, "startedWriting"),
        "Headers._rawHeaders": _KEYS is not None and _COOKIE is not None,
        "Request._forceSSL": hasattr(Request, "_forceSSL"),
    }


def useEncoder(leaf: object, request: IRequest) -> None:
    """
    Do for C{leaf} what C{Request.process} does for the leaf C{Site}
    finds, so that an C{EncodingResourceWrapper} (gzip) inside a session
    wrapper still compresses.  A no-op when Twisted lacks the internals.

    @param leaf: the resource about to render.
    @param request: the request.
    """
    if _IEncodingResource is not None and _IEncodingResource.providedBy(leaf):
        encoder = leaf.getEncoder(request)  # type: ignore[attr-defined]
        if encoder is not None:
            _setEncoder(request, encoder)


def _setEncoder(request: Any, encoder: object) -> None:
    """
    Set what C{Request.write} encodes the body with (gzip), or C{None}.
    """
    request._encoder = encoder


def _headerKeys() -> tuple[bytes, bytes] | None:
    """
    The keys C{Headers._rawHeaders} files C{Vary} and C{Cache-Control}
    under in this Twisted (canonical case since 24.x, lower case before),
    found by asking it; C{None} when it has no such dict.
    """
    probe = Headers()
    raw = getattr(probe, "_rawHeaders", None)
    if not isinstance(raw, dict):
        return None
    probe.setRawHeaders(b"vary", [b"x"])
    probe.setRawHeaders(b"cache-control", [b"x"])
    keys = tuple(raw)
    if len(keys) != 2 or not all(isinstance(k, bytes) for k in keys):
        return None
    return keys[0], keys[1]


_KEYS = _headerKeys()


def _cookieKey() -> bytes | None:
    """
    The key under which C{Headers._rawHeaders} files a request's C{Cookie}
    headers in this Twisted, found by asking it; C{None} when it has no
    such dict.
    """
    probe = Headers()
    raw = getattr(probe, "_rawHeaders", None)
    if not isinstance(raw, dict):
        return None
    probe.addRawHeader(b"cookie", b"x")
    keys = tuple(raw)
    if len(keys) != 1 or not isinstance(keys[0], bytes):
        return None
    return keys[0]


_COOKIE = _cookieKey()


def cookieHeaders(request: IRequest) -> Sequence[bytes] | None:
    """
    C{request.requestHeaders.getRawHeaders(b"cookie")}, read straight from
    C{Headers._rawHeaders} (without the copy and the name encoding), or
    through the public API when this Twisted files headers some other way.

    @param request: the request.
    @return: its C{Cookie} header values, not to be changed; C{None} when
        it has none.
    """
    headers: Headers = request.requestHeaders
    if _COOKIE is None:
        return headers.getRawHeaders(b"cookie")
    raw: dict[bytes, list[bytes]] = headers._rawHeaders
    return raw.get(_COOKIE)


def markPrivateIfBare(headers: Headers) -> bool:
    """
    Add C{Vary: Cookie} and C{Cache-Control: private} to response headers
    that have neither, straight into C{Headers._rawHeaders} (what
    C{setRawHeaders} would do, a quarter of the cost).

    @param headers: the response headers.
    @return: whether it did; C{False} when either header is present, or
        when this Twisted files headers some other way: then the caller
        uses the public API.
    """
    if _KEYS is None:
        return False
    raw: dict[bytes, list[bytes]] = headers._rawHeaders
    vary, cacheControl = _KEYS
    if vary in raw or cacheControl in raw:
        return False
    raw[vary] = [b"Cookie"]
    raw[cacheControl] = [b"private"]
    return True


def copyHeaders(headers: Headers) -> Headers:
    """
    C{headers.copy()}, with C{Headers._rawHeaders} copied as it is (names
    already encoded, values already checked) rather than set again one by
    one: a tenth of the cost.

    @param headers: response headers.
    @return: a copy that changes to C{headers} leave alone.
    """
    if _KEYS is None or type(headers) is not Headers:
        return headers.copy()
    copied = Headers()
    copied._rawHeaders = {
        name: list(values) for name, values in headers._rawHeaders.items()
    }
    return copied


_CHANNEL = HTTPChannel.isSecure
_REQUEST = Request.isSecure

_SECURE = "_txsessionsSecure"
"""
The channel attribute that keeps L{isSecure}'s answer: its transport, and
whether that transport is secure.
"""


def isSecure(request: IRequest) -> bool:
    """
    C{request.isSecure()}, with the channel's answer asked once per
    connection: C{HTTPChannel.isSecure} adapts the transport to
    C{ISSLTransport}, which costs more than the rest of a new session's
    cookie, and cannot change while the transport stays the same.

    @param request: the request.
    @return: whether it came over TLS (or C{setHost} said so).
    """
    forced = getattr(request, "_forceSSL", None)
    channel = getattr(request, "channel", None)
    if (
        forced is None
        or channel is None
        # Twisted's own answers alone are known: a request or channel that
        # answers for itself (VHostMonsterResource behind a TLS proxy sets
        # its own on the request) is asked.
        or getattr(request.isSecure, "__func__", None) is not _REQUEST
        or getattr(channel.isSecure, "__func__", None) is not _CHANNEL
    ):
        return bool(request.isSecure())
    if forced:
        return True
    transport = channel.transport
    known = getattr(channel, _SECURE, None)
    if known is None or known[0] is not transport:
        known = (transport, bool(channel.isSecure()))
        setattr(channel, _SECURE, known)
    return known[1]


def connectionOf(request: IRequest) -> HTTPChannel | None:
    """
    The HTTP/1.x connection C{request} came on, to keep per-connection facts
    on (in attributes of txsessions' own): C{None} for an HTTP/2 stream, a
    subclass of C{HTTPChannel} or a request that is not Twisted's.

    @param request: the request.
    """
    channel = getattr(request, "channel", None)
    return channel if type(channel) is HTTPChannel else None


def _disconnected(request: Any) -> bool:
    return bool(getattr(request, "_disconnected", False))


class _State(enum.Enum):
    open = "nothing written yet"
    holding = "saving before the headers go out; writes are buffered"
    streaming = "headers sent; writes pass through"
    finishing = "saving before the response finishes"
    closed = "finished or failed; writes are dropped"


# Module-level names for the states: every response goes through several,
# and a global is read faster than an Enum member (an attribute of a class
# with a metaclass).
_OPEN, _HOLDING, _STREAMING, _FINISHING, _CLOSED = _State


class HeldResponse:
    """
    Hooks a request's C{write} and C{finish} so that L{commit} runs, and
    completes, before the headers go out and again before the response ends.
    A subclass says what L{commit} saves (the request session of
    C{txsessions._request}: one object per request).
    """

    __slots__ = (
        "_request",
        "_write",
        "_finish",
        "_state",
        "_buffer",
        "_finishRequested",
        "_sent",
    )

    def __init__(self, request: IRequest) -> None:
        """
        @param request: a C{twisted.web.server.Request} (or anything with
            its C{write}, C{finish}, C{startedWriting} and C{code}).
        """
        self._request: Any = request
        self._write = request.write
        self._finish = request.finish
        if not request.startedWriting:  # type: ignore[attr-defined]
            self._state = _OPEN
        elif getattr(request, "finished", False):
            self._state = _CLOSED
            self.finished()
        else:
            self._state = _STREAMING
        # Instance attributes shadow the class's methods for this request only.
        setattr(request, "write", self.write)  # noqa: B010
        setattr(request, "finish", self.finish)  # noqa: B010

    def commit(self, headersSent: bool) -> Deferred[None] | None:
        """
        Save before the response goes on.

        @param headersSent: whether the headers are already sent.
        @return: C{None} when there is nothing to wait for, or a
            L{Deferred} to wait for.
        """
        raise NotImplementedError

    def finished(self) -> None:
        """
        The response is finishing (or failed), and L{commit} has taken the
        last of what it saves: nothing changed from now on is.  Told at
        once when the response had finished before this was made.
        """

    def cookiesKept(self) -> Sequence[bytes]:
        """
        @return: the C{Set-Cookie} values a response answered 503 or 409
            (its session unsaved: L{failedBody}) still carries: none here.
        """
        return ()

    def nothingWritten(self) -> bool:
        """
        @return: whether nothing was written to the response yet, through
            this held response or around it: the headers are still to be
            decided.  Once a write is held (the session being saved), the
            response is on its way although Twisted has not begun it.
            After L{release}, it is Twisted's to say.
        """
        state = self._state
        return (state is _OPEN or state is _CLOSED) and not self._request.startedWriting

    def release(self) -> None:
        """
        Step aside before anything was written: the session is saved, and
        the response goes straight to Twisted from now on (so it is
        L{finished} for the session).
        """
        if self._state is _OPEN:
            self._state = _CLOSED
            # The methods the request had are put back, rather than the
            # hooks deleted: deleting an instance attribute makes CPython
            # give the request a dict of its own, which costs more than the
            # rest of the hook (and would drop a hook of someone else's).
            request = self._request
            request.write = self._write
            request.finish = self._finish
        self.finished()

    def write(self, data: bytes) -> None:
        """
        Replaces C{request.write}.
        """
        state = self._state
        if state is _STREAMING:
            self._write(data)
        elif state is _OPEN:
            try:
                waiting = self.commit(False)
            except Exception:
                waiting = fail()
            if waiting is None:
                self._state = _STREAMING
                self._write(data)
            else:
                self._hold(data)
                waiting.addCallbacks(self._released, self._failed)
        elif state is _HOLDING and not self._finishRequested:
            self._buffer.append(data)

    def finish(self) -> None:
        """
        Replaces C{request.finish}.
        """
        state = self._state
        if state is _HOLDING:
            self._finishRequested = True
        elif state is _STREAMING or state is _OPEN:
            self._state = _FINISHING
            try:
                waiting = self.commit(state is _STREAMING)
            except Exception:
                waiting = fail()
            self.finished()
            if waiting is None:
                self._finishNow()
            else:
                waiting.addCallbacks(lambda _: self._finishNow(), self._failed)

    def _hold(self, data: bytes) -> None:
        """
        Buffer the first write while the session is saved.  The status and
        headers it would have sent are kept aside: what the application
        changes after it would not have reached the client, and must not now.
        """
        request = self._request
        self._state = _HOLDING
        self._buffer = [data]
        self._finishRequested = False
        self._sent = (
            request.code,
            request.code_message,
            copyHeaders(request.responseHeaders),
        )

    def _released(self, _: object) -> None:
        request = self._request
        assert self._sent is not None
        request.code, request.code_message, request.responseHeaders = self._sent
        self._state = _STREAMING
        data = b"".join(self._buffer)
        self._buffer = []
        self._write(data)
        if self._finishRequested:
            self.finish()

    def _finishNow(self) -> None:
        self._state = _STREAMING
        if not _disconnected(self._request):
            self._finish()
        self._state = _CLOSED

    def _failed(self, failure: Failure) -> None:
        request = self._request
        self._state = _CLOSED
        self._buffer = []
        self.finished()
        if _disconnected(request) or request.startedWriting:
            logUnsaved(failure)
            if not _disconnected(request):
                abort(request)
            return
        self._write(failedBody(failure, request, keep=self.cookiesKept()))
        self._finish()


def logUnsaved(failure: Failure) -> None:
    """
    Log why a session could not be saved, unless it was logged where it
    happened (a database failure, a conflict).

    @param failure: why.
    """
    if not failure.check(DatabaseError, SessionConflictError):
        _log.failure("the session could not be saved", failure=failure)


def failedBody(
    failure: Failure,
    request: IRequest,
    whole: bool = True,
    keep: Sequence[bytes] = (),
) -> bytes:
    """
    Make a response whose session could not be saved, nothing written yet,
    a 409 (another request regenerated or destroyed the session first) or
    a 503, without a cookie, and log why (L{logUnsaved}).  It goes out as
    plain text, whatever encoder (gzip) the resource chose.

    @param failure: why it could not be saved.
    @param request: the request, its headers not yet sent.
    @param whole: whether the body returned is the whole response, to be
        given its C{Content-Length}; not for a handler called by another,
        which answers the response with what it makes of it.
    @param keep: the C{Set-Cookie} values it still carries
        (L{HeldResponse.cookiesKept}); every other cookie is dropped.
    @return: the body to answer with.
    """
    logUnsaved(failure)
    if failure.check(SessionConflictError):
        code, body = 409, CONFLICT
    else:
        code, body = 503, UNAVAILABLE
    request.setResponseCode(code)
    headers = Headers(
        {
            b"Content-Type": [b"text/plain; charset=utf-8"],
            b"Cache-Control": [b"no-store"],
        }
    )
    if whole:
        headers.setRawHeaders(b"Content-Length", [b"%d" % len(body)])
    if getattr(request, "_encoder", None) is not None:
        _setEncoder(request, None)
    # What Twisted set for the connection stays: Connection (close, when the
    # client asked), Server and Date.
    before = request.responseHeaders
    for name in _KEPT_HEADERS:
        values = before.getRawHeaders(name)
        if values:
            headers.setRawHeaders(name, values)
    request.responseHeaders = headers
    request.cookies = list(keep)  # type: ignore[attr-defined]
    return body


_KEPT_HEADERS = (b"Connection", b"Server", b"Date")


def abort(request: Any) -> None:
    """
    Cut a response short, over HTTP/1.1 or HTTP/2 alike.
    """
    channel = request.channel
    abort = getattr(channel, "abortConnection", None)
    if abort is None:
        abort = channel.transport.abortConnection
    abort()
