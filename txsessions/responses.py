# -*- test-case-name: tests.test_web -*-
"""
Holding a response back until its session is saved.

Twisted writes a response's headers on its first C{write} and ends it with
C{finish}.  L{HeldResponse} steps in front of both on one request: before the
headers go out the session is saved (so its cookie can still be set), and
the response finishes only once every change is saved, so the client's next
request always sees them.  While a save is under way, writes are buffered.

If the save fails before the headers were sent, the client gets a 503 and no
cookie; if it fails later, the connection is aborted, so that no response
looks complete when its session changes were lost.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

_log = Logger()

Commit = Callable[[bool], "Deferred[None] | None"]

UNAVAILABLE = b"Session storage is unavailable; please try again.\n"


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
    Hooks a request's C{write} and C{finish} so that C{commit} runs, and
    completes, before the headers go out and again before the response ends.
    """

    __slots__ = (
        "_request",
        "_commit",
        "_write",
        "_finish",
        "_state",
        "_buffer",
        "_finishRequested",
        "_sent",
    )

    def __init__(self, request: IRequest, commit: Commit) -> None:
        """
        @param request: a C{twisted.web.server.Request} (or anything with
            its C{write}, C{finish}, C{startedWriting} and C{code}).
        @param commit: called with whether the headers are already sent;
            returns C{None} when it has nothing to wait for, or a
            L{Deferred} to wait for.
        """
        self._request: Any = request
        self._commit = commit
        self._write = request.write
        self._finish = request.finish
        if getattr(request, "finished", False):
            self._state = _CLOSED
        elif request.startedWriting:  # type: ignore[attr-defined]
            self._state = _STREAMING
        else:
            self._state = _OPEN
        self._buffer: list[bytes] = []
        self._finishRequested = False
        self._sent: tuple[int, bytes, Headers] | None = None
        # Instance attributes shadow the class's methods for this request only.
        setattr(request, "write", self.write)  # noqa: B010
        setattr(request, "finish", self.finish)  # noqa: B010

    def write(self, data: bytes) -> None:
        """
        Replaces C{request.write}.
        """
        state = self._state
        if state is _STREAMING:
            self._write(data)
        elif state is _OPEN:
            try:
                waiting = self._commit(False)
            except Exception:
                waiting = fail()
            if waiting is None:
                self._state = _STREAMING
                self._write(data)
            else:
                self._hold(data)
                waiting.addCallbacks(self._released, self._failed)
        elif state is _HOLDING:
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
                waiting = self._commit(state is _STREAMING)
            except Exception:
                waiting = fail()
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
        self._buffer.append(data)
        self._sent = (
            request.code,
            request.code_message,
            request.responseHeaders.copy(),
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
        if not self._request._disconnected:
            self._finish()
        self._state = _CLOSED

    def _failed(self, failure: Failure) -> None:
        _log.failure("the session could not be saved", failure=failure)
        request = self._request
        self._state = _CLOSED
        self._buffer = []
        if request._disconnected:
            return
        if request.startedWriting:
            _abort(request)
            return
        request.setResponseCode(503)
        request.responseHeaders = Headers(
            {
                b"Content-Type": [b"text/plain; charset=utf-8"],
                b"Content-Length": [b"%d" % len(UNAVAILABLE)],
                b"Cache-Control": [b"no-store"],
            }
        )
        request.cookies = []
        self._write(UNAVAILABLE)
        self._finish()


def _abort(request: Any) -> None:
    """
    Cut a response short, over HTTP/1.1 or HTTP/2 alike.
    """
    channel = request.channel
    abort = getattr(channel, "abortConnection", None)
    if abort is None:
        abort = channel.transport.abortConnection
    abort()
