# -*- test-case-name: tests.test_web -*-
"""
Web integration: a resource wrapper for any L{IResource}, a decorator for
Klein routes, and L{get} for the session of a request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.pages import errorPage
from twisted.web.resource import IResource, getChildForRequest
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ._calls import fromAwaitable, isDeferred
from ._hold import UNAVAILABLE, failedBody, useEncoder
from ._parts import Parts
from ._request import attach, currentSession, requestSession
from .csrf import guard, isExempt
from .errors import DatabaseError
from .session import Session


class _Manager(Protocol):
    """
    What the web layer needs of a L{txsessions.Sessions} manager.
    """

    @property
    def parts(self) -> Parts:
        """
        The manager's request-path parts.
        """


M = TypeVar("M", bound=_Manager)
T = TypeVar("T")


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
class SessionResource(Generic[M]):
    """
    Wraps a resource so that every request under it has a session, in the
    manner of C{twisted.web.guard}: transparent to traversal, it loads the
    session and then hands the request to the wrapped resource, Klein's
    C{app.resource()} included.  When the session cannot be loaded the
    client gets a 503.  Under C{Config(csrf=True)} an unsafe request
    without a valid token gets a 403 before the wrapped resource sees it
    (L{txsessions.csrf}).

    @ivar sessions: the manager that starts the sessions.
    """

    isLeaf = False

    def __init__(self, sessions: M, wrapped: IResource) -> None:
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
        return _Started(self._serve)

    def render(self, request: IRequest) -> int:
        """
        Render the wrapped resource once the session is loaded.
        """
        return _Started(self._serve).render(request)

    def putChild(self, path: bytes, child: IResource) -> None:
        """
        Children belong to the wrapped resource.
        """
        raise NotImplementedError("put children on the wrapped resource")

    def _serve(self, request: IRequest) -> None:
        """
        Start the request's session, then render the wrapped resource's leaf
        (or a 503 when the database failed; the manager has logged why).
        """
        try:
            loaded = attach(self.sessions.parts, request)
        except DatabaseError:
            self._render(request, started=False)
            return
        if isinstance(loaded, Session):
            self._render(request, started=True)
            return

        def unavailable(failure: Failure) -> None:
            failure.trap(DatabaseError)
            self._render(request, started=False)

        def failed(failure: Failure) -> None:
            request.processingFailed(failure)  # type: ignore[attr-defined]

        loaded.addCallbacks(
            lambda _: self._render(request, started=True), unavailable
        ).addErrback(failed)

    def _render(self, request: IRequest, started: bool) -> None:
        if started:
            leaf = getChildForRequest(self._wrapped, request)
            config = self.sessions.parts.config
            if config.csrf:
                refused = guard(
                    request, currentSession(request), leaf, config.csrfSettings
                )
                if refused is not None:
                    request.write(refused)
                    request.finish()
                    return
            useEncoder(leaf, request)
        else:
            leaf = errorPage(503, "Service Unavailable", UNAVAILABLE.decode())
        request.render(leaf)  # type: ignore[attr-defined]


@implementer(IResource)
class _Started:
    """
    The leaf L{SessionResource} hands to C{Site}: it renders the wrapped
    resource's leaf once the session is loaded.
    """

    isLeaf = True

    def __init__(self, serve: Callable[[IRequest], None]) -> None:
        """
        @param serve: what renders the request (L{SessionResource}'s).
        """
        self._serve = serve

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError()

    def render(self, request: IRequest) -> int:
        self._serve(request)
        return NOT_DONE_YET


def withSession(sessions: _Manager, handler: Callable[..., Any]) -> Callable[..., Any]:
    """
    The decorator behind L{Sessions.withSession}: call C{handler} with the
    request's session inserted after the request, for module-level and
    class-bound Klein apps alike.  When the session cannot be loaded the
    client gets a 503 and C{handler} is not called; under
    C{Config(csrf=True)}, an unsafe request without a valid token gets a
    403 and C{handler} is not called either, unless it is marked with
    L{txsessions.csrf.csrfExempt}.

    @param sessions: the manager.
    @param handler: a Klein route handler, plain or C{async}.
    @return: a handler with C{handler}'s name, as Klein needs distinct
        names for distinct routes.  It calls C{handler} at once when the
        database answered at once, and returns a L{Deferred} otherwise.
    """
    config = sessions.parts.config
    checkCSRF = config.csrf and not isExempt(handler)

    @functools.wraps(handler)
    def withSessionHandler(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and type(args[0]) in _requestTypes:
            # A module-level route: the request alone.
            request = args[0]
            index = 0
        else:
            index = 0
            for request in args:
                if type(request) in _requestTypes or _isRequest(request):
                    break
                index += 1
            else:
                raise TypeError(f"{handler.__qualname__} was not called with a request")
        # Whoever gives the request its session hands the response back to
        # Twisted once it is saved; a withSession handler called by another
        # leaves that to the outer one, which may change the session after.
        outermost = requestSession(request) is None
        try:
            loaded = attach(
                sessions.parts, request, None, _later, index, args, kwargs, outermost
            )
        except DatabaseError:
            return _unavailable(request)
        if not isinstance(loaded, Session):
            return loaded  # _later is called with the session
        return _call(loaded, index, args, kwargs, outermost)

    def _call(
        session: Session,
        index: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outermost: bool,
    ) -> Any:
        """
        Call C{handler} with C{session} after the request (C{args[index]}),
        once any CSRF check has passed.

        @param outermost: whether this call gave the request its session.
        """
        request = args[index]
        if checkCSRF:
            refused = guard(request, session, handler, config.csrfSettings)
            if refused is not None:
                return refused
        if len(args) == 1:
            result = handler(request, session, **kwargs)
        else:
            result = handler(*args[: index + 1], session, *args[index + 1 :], **kwargs)
        if type(result) is str or type(result) is bytes:
            # The whole response: save now, and let it go straight to
            # Twisted once saved.
            return answered(request, result, outermost)
        return result

    def _later(
        loaded: Session | Failure,
        index: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        outermost: bool,
    ) -> Any:
        """
        L{_call}, once the session is loaded (or a 503 when it could not
        be): in a callback, where a coroutine must be made a L{Deferred} to
        be waited for.
        """
        if isinstance(loaded, Failure):
            return _unavailableLater(loaded, args[index])
        result = _call(loaded, index, args, kwargs, outermost)
        # A Deferred (a save under way) or a body first: they are no
        # coroutine, and asking an ABC costs more than the rest.
        if isDeferred(result) or type(result) is bytes or type(result) is str:
            return result
        if inspect.isawaitable(result):
            return fromAwaitable(result)
        return result

    return withSessionHandler


_requestTypes: set[type] = set()
"""
The classes whose instances were found to provide L{IRequest}: a set lookup
is cheaper than asking zope.interface on every request.
"""


def _isRequest(candidate: object) -> bool:
    """
    @return: whether C{candidate} provides L{IRequest}, remembering its
        class when it does.
    """
    if IRequest.providedBy(candidate):
        # Classes only: a request made to provide IRequest by directlyProvides
        # is asked again each time, at no harm.
        if IRequest.implementedBy(type(candidate)):
            _requestTypes.add(type(candidate))
        return True
    return False


def answered(request: IRequest, body: T, release: bool = True) -> T | Deferred[T]:
    """
    Tell the request session that its handler has returned the whole
    response body and written nothing yet: the session is saved now, and
    the response goes straight to Twisted, not through the held response,
    once the database has answered.

    @param request: a request with a session.
    @param body: what the handler returned.
    @param release: whether the response goes straight to Twisted from
        now on; not for a handler called by another, which may change the
        session afterwards (see L{RequestSession.release
        <txsessions._request.RequestSession.release>}).
    @return: C{body}, at once when nothing was to be waited for; or else a
        L{Deferred} firing with it once everything is saved, or with the
        body of a 503 (a 409 for a conflict), without a cookie, when
        something could not be.
    """
    state = requestSession(request)
    if state is None or not state.nothingWritten():
        # What was written is on its way (or held while the session is
        # saved): the held response saves the rest before it finishes, and
        # cuts the response short if it cannot.
        return body
    waiting = state.commit(False)
    if release:
        state.release()
    if waiting is None:
        return body
    return waiting.addCallbacks(
        lambda _: body, _unanswered, errbackArgs=(request, release)
    )


def _unanswered(failure: Failure, request: IRequest, whole: bool) -> Any:
    """
    The answer of a request whose handler returned its whole body, when its
    session could not be saved (L{answered}); a cancellation (the client
    went away) is passed on as it is.

    @param whole: whether the handler's body is the whole response (not a
        handler called by another, which answers with what it makes of it).
    """
    if failure.check(CancelledError):
        return failure
    state = requestSession(request)
    keep = () if state is None else state.cookiesKept()
    return failedBody(failure, request, whole, keep)


def _unavailableLater(failure: Failure, request: IRequest) -> bytes:
    """
    Answer 503 when the session could not be loaded later.
    """
    failure.trap(DatabaseError)
    return _unavailable(request)


def _unavailable(request: IRequest) -> bytes:
    """
    Answer 503: the session could not be loaded (the manager has logged
    why).
    """
    request.setResponseCode(503)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return UNAVAILABLE
