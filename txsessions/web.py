# -*- test-case-name: tests.test_web -*-
"""
Web integration: a resource wrapper for any L{IResource}, a decorator for
Klein routes, and L{get} for the session of a request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.pages import errorPage
from twisted.web.resource import IResource, _IEncodingResource, getChildForRequest
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from .errors import DatabaseError
from .manager import currentSession
from .responses import UNAVAILABLE
from .session import Session

if TYPE_CHECKING:
    from .manager import Sessions

_log = Logger()


def get(request: IRequest) -> Session:
    """
    The session of a request under L{Sessions.wrap} or a
    L{Sessions.withSession} route (Iris: C{sessions.Get}).

    @param request: the request.
    @return: its L{Session}.
    @raise NoSessionError: when the request has no session.
    """
    return currentSession(request)


@implementer(IResource)
class SessionResource:
    """
    Wraps a resource so that every request under it has a session, in the
    manner of C{twisted.web.guard}: transparent to traversal, it loads the
    session and then hands the request to the wrapped resource, Klein's
    C{app.resource()} included.  When the session cannot be loaded the
    client gets a 503.

    @ivar sessions: the manager that starts the sessions.
    """

    isLeaf = False

    def __init__(self, sessions: Sessions, wrapped: IResource) -> None:
        """
        @param sessions: the manager that starts the sessions.
        @param wrapped: the resource to serve.
        """
        self.sessions = sessions
        self._wrapped = wrapped

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        """
        Stay out of the path: put the segment back and serve the wrapped
        resource's child once the session is loaded.
        """
        request.postpath.insert(0, request.prepath.pop())
        return _Started(self)

    def render(self, request: IRequest) -> int:
        """
        Render the wrapped resource once the session is loaded.
        """
        return _Started(self).render(request)

    def putChild(self, path: bytes, child: IResource) -> None:
        """
        Children belong to the wrapped resource.
        """
        raise NotImplementedError("put children on the wrapped resource")

    async def _serve(self, request: IRequest) -> None:
        try:
            await self.sessions.start(request)
        except DatabaseError:
            _log.failure("could not load the session")
            leaf: IResource = errorPage(
                503, "Service Unavailable", UNAVAILABLE.decode()
            )
        else:
            leaf = getChildForRequest(self._wrapped, request)
            # What Request.process does for the leaf Site finds, so that an
            # EncodingResourceWrapper (gzip) inside still compresses.
            if _IEncodingResource.providedBy(leaf):
                encoder = leaf.getEncoder(request)
                if encoder is not None:
                    request._encoder = encoder  # type: ignore[attr-defined]
        request.render(leaf)  # type: ignore[attr-defined]


@implementer(IResource)
class _Started:
    """
    The leaf L{SessionResource} hands to C{Site}: it renders the wrapped
    resource's leaf once the session is loaded.
    """

    isLeaf = True

    def __init__(self, wrapper: SessionResource) -> None:
        self._wrapper = wrapper

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError()

    def render(self, request: IRequest) -> int:
        def failed(failure: Failure) -> None:
            request.processingFailed(failure)  # type: ignore[attr-defined]

        Deferred.fromCoroutine(self._wrapper._serve(request)).addErrback(failed)
        return NOT_DONE_YET


def withSession(sessions: Sessions, handler: Callable[..., Any]) -> Callable[..., Any]:
    """
    The decorator behind L{Sessions.withSession}: call C{handler} with the
    request's session inserted after the request, for module-level and
    class-bound Klein apps alike.  When the session cannot be loaded the
    client gets a 503 and C{handler} is not called.

    @param sessions: the manager.
    @param handler: a Klein route handler, plain or C{async}.
    @return: an C{async} handler with C{handler}'s name, as Klein needs
        distinct names for distinct routes.
    """

    @functools.wraps(handler)
    async def withSessionHandler(*args: Any, **kwargs: Any) -> Any:
        index = next((i for i, a in enumerate(args) if IRequest.providedBy(a)), None)
        if index is None:
            raise TypeError(f"{handler.__qualname__} was not called with a request")
        request = args[index]
        try:
            session = await sessions.start(request)
        except DatabaseError:
            _log.failure("could not load the session")
            request.setResponseCode(503)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return UNAVAILABLE
        result = handler(*args[: index + 1], session, *args[index + 1 :], **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return withSessionHandler
