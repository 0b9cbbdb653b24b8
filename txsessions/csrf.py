# -*- test-case-name: tests.test_csrf -*-
"""
CSRF protection built on the session: tokens bound to it, and the check
that refuses an unsafe request without one.

A token is made from a random secret kept in the session's values (under
L{SECRET_KEY}) and the session's store key::

    bound = HMAC-SHA256(secret, "txsessions csrf" NUL store key)
    token = base64url(mask | mask XOR bound)        (mask: 32 random bytes)

so it never reveals the session id (nor the store key, nor the secret); it
differs on every call, so a page compressed together with a secret of the
attacker's choosing leaks nothing about it (BREACH, the defence Django
uses); regeneration, which changes the store key, makes every earlier token
worthless; and a destroyed session's tokens are worthless because the check
wants a live session.

The check (L{check}) refuses, before the handler runs, every request whose
method is not safe (anything but GET, HEAD, OPTIONS and TRACE) when:
  - its C{Origin} is neither this site's nor trusted, or the browser says
    it comes from another site (C{Sec-Fetch-Site: cross-site}) without a
    trusted C{Origin};
  - it has no live session: no cookie, or one naming a session that ended
    (there is nothing a token could be bound to; letting it through would
    allow login CSRF);
  - it carries no token, in the C{X-CSRF-Token} header or the C{csrf_token}
    form field of a POST body, or a token that does not match.

Two ways to apply it: L{CSRFResource} wraps a resource (inside
L{Sessions.wrap<txsessions.Sessions.wrap>}), and L{protect} decorates a
handler (inside L{Sessions.withSession<txsessions.Sessions.withSession>}).
This module imports nothing of txsessions' request path (the manager, the
session, the web layer), so each of those may import it in turn.
L{csrfExempt} marks a handler or a resource that must take unsafe requests
without a token (a webhook called by another server).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote_to_bytes

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, getChildForRequest
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ._hold import useEncoder
from .cookies import cameOverTLS
from .errors import DatabaseError

if TYPE_CHECKING:
    # Types only: session.py, manager.py and web.py may import this module.
    from .manager import Sessions
    from .session import Session

SECRET_KEY = "txsessions.csrf"
"""
The session key holding a session's CSRF secret (43 characters of base64url,
written by the first L{csrfToken}).  Reserved: an application must not set
it.  L{Session.clear} removes it, which makes the session's earlier tokens
worthless.
"""

FIELD = "csrf_token"
"""
The form field a token travels in (in a POST body, never in the URL).
"""

HEADER = "X-CSRF-Token"
"""
The request header a token travels in (for C{fetch()} and other scripts).
"""

SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
"""
The methods that are never checked: they must not change anything.  Every
other method is unsafe, C{POST}, C{PUT}, C{PATCH} and C{DELETE} included.
"""

TOKEN_LENGTH = 86
"""
The length of every token: base64url, unpadded, of 64 bytes.
"""

FORBIDDEN = b"Forbidden: the CSRF check failed\n"
"""
The body of a refusal (status 403).
"""

_SECRET_BYTES = 32
_SECRET_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")
_TOKEN_TEXT = re.compile(rb"[A-Za-z0-9_-]{%d}" % TOKEN_LENGTH)
_ORIGIN = re.compile(
    r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?", re.ASCII
)
_HOST = re.compile(r"([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?", re.ASCII)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_log = Logger()

T = TypeVar("T")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _bound(session: Session, create: bool) -> bytes | None:
    """
    The session's token value: its secret bound to its store key.

    @param create: whether to give the session a secret when it has none.
    @return: 32 bytes, or C{None} when the session has no secret and
        C{create} is false.
    """
    secret = session.get(SECRET_KEY)
    if not (isinstance(secret, str) and _SECRET_TEXT.fullmatch(secret)):
        if not create:
            return None
        secret = _b64encode(os.urandom(_SECRET_BYTES))
        session.set(SECRET_KEY, secret)
    return hmac.new(
        _b64decode(secret.encode("ascii")),
        b"txsessions csrf\x00" + session.key.encode("ascii"),
        hashlib.sha256,
    ).digest()


def csrfToken(session: Session) -> str:
    """
    A token for the forms and scripts of this session's next requests.

    Each call returns a different token (masked anew), and every one stays
    valid until the session is regenerated, cleared, destroyed or ends.
    The first call gives the session a secret, which makes a new session
    persist: the page holding the login form is what starts the session
    its POST needs.

    @param session: the request's session.
    @return: L{TOKEN_LENGTH} characters of base64url, for the form field
        L{FIELD} or the header L{HEADER}.
    @raise SessionDestroyedError: when the session was destroyed.
    """
    bound = _bound(session, create=True)
    assert bound is not None
    mask = os.urandom(len(bound))
    return _b64encode(mask + _xor(mask, bound))


def _matches(token: bytes, bound: bytes) -> bool:
    """
    Whether a submitted token unmasks to C{bound}; constant-time in its
    content.
    """
    if len(token) != TOKEN_LENGTH or _TOKEN_TEXT.fullmatch(token) is None:
        return False
    try:
        data = _b64decode(token)
    except (binascii.Error, ValueError):
        return False
    if len(data) != 2 * len(bound):
        return False
    mask, masked = data[: len(bound)], data[len(bound) :]
    return hmac.compare_digest(_xor(mask, masked), bound)


def _origin(scheme: str, host: str, port: str | None) -> tuple[str, str, int]:
    return scheme, host, int(port) if port else _DEFAULT_PORTS[scheme]


def parseOrigin(origin: str) -> tuple[str, str, int]:
    """
    Read an origin as browsers send it in C{Origin}.

    @param origin: C{scheme://host} or C{scheme://host:port}, scheme C{http}
        or C{https}.
    @return: its scheme, host (lower case) and port (the scheme's default
        when not given).
    @raise ValueError: when C{origin} is not such an origin.
    """
    match = _ORIGIN.fullmatch(origin.lower())
    if match is None:
        raise ValueError(
            f"not an origin (scheme://host[:port], http or https): {origin!r}"
        )
    return _origin(*match.groups())


def _origins(origins: Iterable[str]) -> frozenset[tuple[str, str, int]]:
    if isinstance(origins, (str, bytes)):
        raise ValueError("trustedOrigins is a list of origins, not one string")
    return frozenset(parseOrigin(origin) for origin in origins)


def _paths(paths: Iterable[str]) -> tuple[tuple[bytes, ...], ...]:
    if isinstance(paths, (str, bytes)):
        raise ValueError("exemptPaths is a list of paths, not one string")
    parsed = []
    for path in paths:
        if not (isinstance(path, str) and path.startswith("/")):
            raise ValueError(f"an exempt path starts with '/': {path!r}")
        parsed.append(tuple(path.encode().strip(b"/").split(b"/")))
    return tuple(parsed)


@attrs.frozen
class CSRFSettings:
    """
    How L{check} decides.

    @ivar trustedOrigins: origins besides the request's own that may send
        unsafe requests (C{"https://app.example.com"}); given as strings,
        held parsed.
    @ivar exemptPaths: paths under which L{CSRFResource} checks nothing, each
        a whole path or the segments it starts with (C{"/hooks"} covers
        C{/hooks} and C{/hooks/github}, not C{/hookshot}).
    @ivar trustProxyHeaders: whether to believe C{X-Forwarded-Proto} for the
        scheme of the request's own origin (as
        L{Config.trustProxyHeaders<txsessions.Config>}), read as the session
        cookie's C{Secure} flag reads it (L{txsessions.cookies.cameOverTLS}).
    """

    trustedOrigins: frozenset[tuple[str, str, int]] = attrs.field(
        default=(), converter=_origins
    )
    exemptPaths: tuple[tuple[bytes, ...], ...] = attrs.field(
        default=(), converter=_paths
    )
    trustProxyHeaders: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )


DEFAULT_SETTINGS = CSRFSettings()
"""
No trusted origin besides the request's own, no exempt path.
"""


def _header(request: IRequest, name: bytes) -> bytes | None:
    values = request.requestHeaders.getRawHeaders(name)
    return values[0] if values else None


def _ownOrigin(
    request: IRequest, settings: CSRFSettings
) -> tuple[str, str, int] | None:
    """
    The request's own origin: its scheme and its C{Host} header.
    """
    scheme = "https" if cameOverTLS(request, settings.trustProxyHeaders) else "http"
    host = _header(request, b"host")
    if host is None or not host.isascii():
        return None
    match = _HOST.fullmatch(host.decode("ascii").strip().lower())
    if match is None:
        return None
    return _origin(scheme, *match.groups())


def _originKind(request: IRequest, settings: CSRFSettings) -> str | None:
    """
    What the request's C{Origin} names: C{"own"}, C{"trusted"} or
    C{"foreign"} (neither, C{Origin: null} from sandboxed and opaque
    contexts included); C{None} when it sends none.
    """
    origin = _header(request, b"origin")
    if origin is None:
        return None
    try:
        claimed = parseOrigin(origin.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return "foreign"
    if claimed == _ownOrigin(request, settings):
        return "own"
    return "trusted" if claimed in settings.trustedOrigins else "foreign"


def _inQuery(uri: bytes, name: bytes) -> bool:
    """
    Whether a URL's query string names a field, read as bytes, as Twisted
    reads it into C{request.args} (any bytes, any percent-encoding).
    """
    query = uri.partition(b"?")[2]
    return any(
        unquote_to_bytes(part.partition(b"=")[0].replace(b"+", b" ")) == name
        for part in re.split(rb"[&;]", query)
    )


def _submitted(request: IRequest) -> bytes | None | str:
    """
    The token a request carries: its header, or else its form field.  A
    token in the URL is refused, whatever else the request carries.

    @return: the token, C{None} when there is none, or a reason to refuse.
    """
    field = FIELD.encode("ascii")
    if _inQuery(request.uri, field):
        return "a CSRF token in the URL"
    token = _header(request, HEADER.encode("ascii"))
    if token is not None:
        return token
    values = (request.args or {}).get(field)
    return values[0] if values else None


def check(
    request: IRequest,
    session: Session | None,
    settings: CSRFSettings = DEFAULT_SETTINGS,
) -> str | None:
    """
    Decide whether a request may go on to its handler.

    @param request: the request.
    @param session: its session, or C{None} when it has none.
    @param settings: trusted origins and proxy headers.
    @return: C{None} when it may, or why it may not (for the log; it names
        neither the token nor the session).
    """
    if request.method in SAFE_METHODS:
        return None
    origin = _originKind(request, settings)
    site = _header(request, b"sec-fetch-site")
    # A browser says cross-site for a trusted origin on another site too.
    if site is not None and site.strip().lower() == b"cross-site":
        if origin != "trusted":
            return "a cross-site request (Sec-Fetch-Site)"
    if origin == "foreign":
        return "an Origin that is neither this site nor trusted"
    if session is None or session.isNew or session.destroyed:
        return "no live session"
    token = _submitted(request)
    if token is None:
        return "no CSRF token"
    if isinstance(token, str):
        return token
    bound = _bound(session, create=False)
    if bound is None:
        return "the session has handed out no CSRF token"
    if not _matches(token, bound):
        return "a CSRF token that does not match"
    return None


def refuse(request: IRequest, reason: str) -> bytes:
    """
    Answer 403 for a request L{check} refused, and log why.

    @param request: the request.
    @param reason: what L{check} returned.
    @return: the body, L{FORBIDDEN}.
    """
    _log.info(
        "CSRF check refused {method} {path}: {reason}",
        method=request.method.decode("ascii", "replace"),
        path=request.path.decode("utf-8", "replace")[:200],
        reason=reason,
        security="csrf",
    )
    request.setResponseCode(403)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return FORBIDDEN


def guard(
    request: IRequest,
    session: Session | None,
    handler: object = None,
    settings: CSRFSettings = DEFAULT_SETTINGS,
) -> bytes | None:
    """
    The whole decision for a request about to reach a handler: let it
    through (safe method, exempt handler, exempt path, or L{check} passes),
    or refuse it with L{refuse}.  What L{CSRFResource} and L{protect} do,
    for any other integration to do the same.

    @param request: the request.
    @param session: its session, or C{None} when it has none.
    @param handler: the handler or leaf resource about to run, for
        L{isExempt}.
    @param settings: trusted origins, exempt paths, proxy headers.
    @return: C{None} to go on, or the body of the 403 already set on
        C{request}: answer with it and do not call the handler.
    """
    if (
        request.method in SAFE_METHODS
        or isExempt(handler)
        or _underExemptPath(request, settings)
    ):
        return None
    reason = check(request, session, settings)
    return None if reason is None else refuse(request, reason)


def csrfExempt(handler: T) -> T:
    """
    Mark a handler, a resource or a resource class as taking unsafe
    requests without a token: L{protect} and L{CSRFResource} let them
    through.  For a webhook that another server calls (and that proves
    itself otherwise, by a signature).

    @param handler: a route handler, a resource, or a resource class.
    @return: C{handler}, marked.
    """
    handler.csrfExempt = True  # type: ignore[attr-defined]
    return handler


def isExempt(handler: object) -> bool:
    """
    @return: whether L{csrfExempt} marked C{handler}.
    """
    return getattr(handler, "csrfExempt", False) is True


def protect(
    handler: Callable[..., Any], settings: CSRFSettings = DEFAULT_SETTINGS
) -> Callable[..., Any]:
    """
    Check a handler's requests before it runs: a decorator for handlers
    under L{Sessions.withSession<txsessions.Sessions.withSession>}, put
    below it, so that it is called with the request and, right after it,
    the session::

        @app.route("/comment", methods=["POST"])
        @sessions.withSession
        @csrf.protect
        def comment(request, session): ...

    A refused request gets a 403 and the handler is not called.  A handler
    marked with L{csrfExempt} is returned as it is.

    @param handler: the handler.
    @param settings: trusted origins and proxy headers; give them with
        C{functools.partial(protect, settings=...)}.
    @return: the checking handler, with C{handler}'s name.
    """
    if isExempt(handler):
        return handler

    @functools.wraps(handler)
    def checked(*args: Any, **kwargs: Any) -> Any:
        index = next(
            (i for i, arg in enumerate(args[:-1]) if IRequest.providedBy(arg)), None
        )
        if index is None:
            raise TypeError(
                f"{handler.__qualname__} was not called with a request and a "
                "session: put csrf.protect below Sessions.withSession"
            )
        refused = guard(args[index], args[index + 1], handler, settings)
        return handler(*args, **kwargs) if refused is None else refused

    return checked


def _underExemptPath(request: IRequest, settings: CSRFSettings) -> bool:
    segments = tuple(request.prepath) + tuple(request.postpath)
    segments = tuple(s for s in segments if s) or (b"",)
    if b".." in segments or b"." in segments:
        return False
    return any(segments[: len(path)] == path for path in settings.exemptPaths)


@implementer(IResource)
class CSRFResource:
    """
    Wraps a resource so that every unsafe request under it is checked
    (L{check}) before the wrapped resource sees it.  Put it inside
    L{Sessions.wrap<txsessions.Sessions.wrap>}, with the same manager::

        root = sessions.wrap(CSRFResource(sessions, app.resource()))

    A refused request gets a 403 (a 503 when the session could not be
    loaded).  A leaf resource marked with L{csrfExempt}, and any path under
    L{CSRFSettings.exemptPaths}, is not checked (a route of a Klein app,
    which is one resource, is exempted by its path).
    """

    isLeaf = False

    def __init__(
        self,
        sessions: Sessions,
        wrapped: IResource,
        settings: CSRFSettings = DEFAULT_SETTINGS,
    ) -> None:
        """
        @param sessions: the manager whose sessions the tokens are bound to.
        @param wrapped: the resource to serve.
        @param settings: trusted origins, exempt paths, proxy headers.
        """
        self.sessions = sessions
        self.settings = settings
        self._wrapped = wrapped

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        """
        Stay out of the path: put the segment back and check the request
        before the wrapped resource's child renders it.
        """
        request.postpath.insert(0, request.prepath.pop())
        return _Checked(self._render)

    def render(self, request: IRequest) -> Any:
        """
        Check the request, then render the wrapped resource.
        """
        return _Checked(self._render).render(request)

    def putChild(self, path: bytes, child: IResource) -> None:
        """
        Children belong to the wrapped resource.
        """
        raise NotImplementedError("put children on the wrapped resource")

    def _render(self, request: IRequest) -> Any:
        leaf = getChildForRequest(self._wrapped, request)
        useEncoder(leaf, request)
        if request.method in SAFE_METHODS:
            return leaf.render(request)
        # Under Sessions.wrap the session is loaded: this fires at once.
        started: Deferred[Session] = self.sessions.start(request)

        def checked(session: Session) -> None:
            refused = guard(request, session, leaf, self.settings)
            if refused is None:
                request.render(leaf)  # type: ignore[attr-defined]
            else:
                request.write(refused)
                request.finish()

        def unavailable(failure: Failure) -> None:
            failure.trap(DatabaseError)
            request.setResponseCode(503)
            request.finish()

        def failed(failure: Failure) -> None:
            request.processingFailed(failure)  # type: ignore[attr-defined]

        started.addCallbacks(checked, unavailable).addErrback(failed)
        return NOT_DONE_YET


@implementer(IResource)
class _Checked:
    """
    The leaf L{CSRFResource} hands to traversal.
    """

    isLeaf = True

    def __init__(self, render: Callable[[IRequest], Any]) -> None:
        """
        @param render: what renders the request (L{CSRFResource}'s).
        """
        self._render = render

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError()

    def render(self, request: IRequest) -> Any:
        return self._render(request)
