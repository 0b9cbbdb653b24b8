# -*- test-case-name: tests.test_cookies -*-
"""
Reading the session cookie from a request and writing it to the response.

Twisted's C{Request.addCookie} cannot replace a cookie it already queued, nor
write C{SameSite=None}; this module builds the C{Set-Cookie} value itself and
keeps at most one for the session cookie in C{request.cookies}, the list
Twisted turns into C{Set-Cookie} headers when the response starts.
"""

from __future__ import annotations

import re
from math import floor
from typing import TYPE_CHECKING

from twisted.logger import Logger
from twisted.web.http import datetimeToString
from twisted.web.iweb import IRequest

from ._hold import cookieHeaders, isSecure, markPrivateIfBare
from .ids import WELL_FORMED, WELL_FORMED_BYTES

if TYPE_CHECKING:
    from .config import Config

# RFC 6265 section 4.1.1: a cookie name is an RFC 2616 token.
_token = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A path attribute value: any CHAR except CTLs and ";" (RFC 6265); we also
# refuse "," and white space, which some servers and proxies split on.
_pathValue = re.compile(r"/[\x21-\x2b\x2d-\x3a\x3c-\x7e]*")
# RFC 1034 labels; a leading dot is allowed and ignored by browsers.
_domain = re.compile(
    r"\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
# RFC 6265 cookie-octets.
_cookieValue = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")

_log = Logger()

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def checkCookieName(name: str) -> str:
    """
    Refuse a cookie name that could not be sent as it is or that would inject
    attributes (CVE-2024-47764).

    @param name: the cookie name.
    @return: C{name}, unchanged.
    @raise ValueError: when C{name} is not an RFC 6265 token.
    """
    if not isinstance(name, str) or _token.fullmatch(name) is None:
        raise ValueError(
            f"cookie name {name!r} is not a valid cookie name: use letters, "
            "digits and !#$%&'*+-.^_`|~ only"
        )
    return name


def checkCookiePath(path: str) -> str:
    """
    Refuse a cookie path that does not start with C{/} or that holds a
    separator, white space or a control character.

    @param path: the cookie's Path attribute.
    @return: C{path}, unchanged.
    @raise ValueError: when C{path} is not a safe path.
    """
    if not isinstance(path, str) or _pathValue.fullmatch(path) is None:
        raise ValueError(
            f"cookie path {path!r} must start with '/' and hold no ';', ',', "
            "white space or control characters"
        )
    return path


def checkCookieDomain(domain: str) -> str:
    """
    Refuse a cookie domain that is not a plain DNS name.

    @param domain: the cookie's Domain attribute, such as C{example.com}.
    @return: C{domain}, unchanged.
    @raise ValueError: when C{domain} is not a DNS name.
    """
    if not isinstance(domain, str) or _domain.fullmatch(domain) is None:
        raise ValueError(f"cookie domain {domain!r} is not a DNS name")
    return domain


MAX_CANDIDATES = 3
"""
How many session ids (verified, when there is an encoding, and well formed)
one request's cookies may offer; the rest are ignored.  Values that fail
those checks are not counted: three junk values planted before the
client's own cookie do not hide it.
"""

MAX_COOKIE_VALUE_BYTES = 4096
"""
The longest cookie value read; a longer one is ignored unread.
"""


def readCookies(request: IRequest, name: bytes) -> list[str]:
    """
    Read every value a request gives a cookie: a client may send one cookie
    name several times (planted by a subdomain, or for another path), in one
    C{Cookie} header or several.

    @param request: the request.
    @param name: the cookie name, encoded.
    @return: the distinct values, in the order sent (as many as Twisted's
        bound on a request's headers leaves room for); empty, oversized and
        non-ASCII values are left out.
    """
    headers = cookieHeaders(request)
    if not headers:
        return []
    prefix = name + b"="
    values: dict[str, None] = {}
    for header in headers:
        for part in header.split(b";"):
            part = part.strip()
            if not part.startswith(prefix):
                continue
            value = _candidate(part[len(prefix) :])
            if value is not None:
                values[value] = None
    return list(values)


def sessionIDs(
    config: Config, request: IRequest, name: bytes
) -> tuple[bool, list[tuple[str, bool]]]:
    """
    The session ids the request's cookies carry, verified (when there is an
    encoding) and well formed, each with whether its cookie is current.

    @param config: the configuration.
    @param request: the request.
    @param name: C{config.cookie}, encoded.
    @return: whether the request carried a session cookie, and the ids.
    """
    headers = cookieHeaders(request)
    if not headers:
        return False, []
    if len(headers) == 1 and config.encoding is None:
        # The commonest request: one Cookie header naming the cookie once,
        # with no encoding.  Twisted has parsed it; read its value in place.
        header = headers[0]
        prefix = name + b"="
        if header.count(prefix) == 1:
            # Named once in the header, so what Twisted parsed for the name
            # is that one occurrence.
            parsed: dict[bytes, bytes] = request.received_cookies  # type: ignore[attr-defined]
            raw = parsed.get(name)
            if raw is not None and WELL_FORMED_BYTES.fullmatch(raw) is not None:
                return True, [(raw.decode("ascii"), True)]
    values = readCookies(request, name)
    if not values:
        return False, []
    if len(values) > 1:
        _log.info(
            "{n} session cookies in one request", n=len(values), security="several"
        )
    encoding = config.encoding
    opener = None if encoding is None else getattr(encoding, "open", None)
    found: list[tuple[str, bool]] = []
    rejected = malformed = 0
    why = ""
    for value in values:
        current = True
        if encoding is not None:
            try:
                if opener is not None:
                    opened = opener(config.cookie, value)
                    value, current = str(opened.value), bool(opened.current)
                else:
                    value = str(encoding.decode(config.cookie, value))
            except Exception as e:
                rejected += 1
                why = str(e)
                continue
            if not current:
                _log.info("session cookie due for re-issue", security="oldKey")
        if WELL_FORMED.fullmatch(value) is None:
            malformed += 1
            continue
        found.append((value, current))
        if len(found) == MAX_CANDIDATES:
            break
    # One line each, however many values a request carried.
    if rejected:
        _log.info(
            "{n} session cookie(s) rejected: {why}",
            n=rejected,
            why=why,
            security="tampered",
        )
    if malformed:
        _log.info(
            "{n} malformed session id(s) ignored", n=malformed, security="malformed"
        )
    return True, found


def _candidate(raw: bytes) -> str | None:
    """
    A cookie value worth trying, or C{None} for an empty, oversized or
    non-ASCII one.
    """
    raw = raw.strip()
    if not raw or len(raw) > MAX_COOKIE_VALUE_BYTES:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def isSecureRequest(config: Config, request: IRequest) -> bool:
    """
    Tell whether a request came over TLS, as the configuration's
    C{trustProxyHeaders} says to judge it (see L{cameOverTLS}).

    @param config: the configuration.
    @param request: the request.
    @return: C{True} for a secure request.
    """
    return cameOverTLS(request, config.trustProxyHeaders)


def cameOverTLS(request: IRequest, trustProxyHeaders: bool) -> bool:
    """
    Tell whether a request came over TLS: directly, or, when proxy headers
    are trusted, through a proxy whose C{X-Forwarded-Proto} says the
    client's hop was C{https}.  A chain of proxies sends a list, the
    client's hop first (C{https, http}); only that first value counts.  The
    one reading of the header, for the cookie's C{Secure} flag and the CSRF
    check's own origin alike.

    @param request: the request.
    @param trustProxyHeaders: whether to believe C{X-Forwarded-Proto}.
    @return: C{True} for a secure request.
    """
    if isSecure(request):
        return True
    if not trustProxyHeaders:
        return False
    forwarded = request.requestHeaders.getRawHeaders(b"x-forwarded-proto", [])
    return bool(forwarded) and forwarded[0].split(b",")[0].strip().lower() == b"https"


def cookieAttributes(config: Config) -> tuple[str, str, str]:
    """
    Spell out the attributes a configuration gives the session cookie, once
    per configuration rather than once per cookie.

    @param config: the configuration.
    @return: the scope (C{Path}, then any C{Domain}), and the flags that end
        the header over plain HTTP and over TLS, each flag after C{"; "}:
        C{HttpOnly}, C{Secure} (on the second, and on both when the cookie
        must be secure), C{SameSite}.
    """
    scope = f"Path={config.cookiePath}"
    if config.cookieDomain is not None and not config.disableSubdomainPersistence:
        scope += f"; Domain={config.cookieDomain}"
    httpOnly = "; HttpOnly" if config.cookieHTTPOnly else ""
    sameSite = (
        ""
        if config.cookieSameSite is None
        else "; SameSite=" + config.cookieSameSite.capitalize()
    )
    secure = f"{httpOnly}; Secure{sameSite}"
    return scope, secure if config.secureOnly else httpOnly + sameSite, secure


def sessionCookie(
    config: Config,
    request: IRequest,
    value: str,
    maxAge: float | None,
    now: float,
    wellFormed: bool = False,
) -> bytes:
    """
    Build the C{Set-Cookie} value that hands a session id to the client.

    @param config: the manager's configuration.
    @param request: the request being answered; C{Secure} is added when it
        came over TLS, or always when the configuration forces it.
    @param value: the cookie value (the session id).
    @param maxAge: the cookie's lifetime in seconds, or C{None} for a cookie
        that lasts until the browser closes.
    @param now: the current time, for the C{Expires} attribute.
    @param wellFormed: whether C{value} is known to be a well-formed
        session id (L{txsessions.ids.isWellFormedID}), which needs no check.
    @return: the header value.
    @raise ValueError: when C{value} holds a character no cookie value may.
    """
    if not wellFormed and _cookieValue.fullmatch(value) is None:
        raise ValueError("a cookie value may hold no space, quote, comma, ';' or '\\'")
    scope = config.cookieAttributes[0]
    flags = _flags(config, request)
    if maxAge is None:
        return f"{config.cookie}={value}; {scope}{flags}".encode("ascii")
    # Rounded half up, with floor(): round() and int() of a float cost
    # several times as much.
    seconds = floor(maxAge + 0.5) if maxAge > 0 else 0
    expires = floor(now + seconds)
    attributes = (scope, flags, expires, seconds)
    suffix = _suffixes.get(attributes)
    if suffix is None:
        if len(_suffixes) >= _SUFFIXES:
            _suffixes.clear()
        suffix = _suffixes[attributes] = (
            f"; {scope}; Expires={datetimeToString(expires).decode('ascii')}; "
            f"Max-Age={seconds}{flags}"
        )
    return (config.cookie + "=" + value + suffix).encode("ascii")


_SUFFIXES = 16
"""
How many C{Set-Cookie} endings L{sessionCookie} keeps.
"""

_suffixes: dict[tuple[str, str, int, int], str] = {}
"""
The endings of recent C{Set-Cookie} values (scope, expiry and flags) by
what they are made of: cookies given the same lifetime within one second
share one, and Twisted's C{datetimeToString} takes several microseconds.
"""


def deletionCookie(config: Config, request: IRequest) -> bytes:
    """
    Build the C{Set-Cookie} value that makes the client forget its session
    cookie: empty, expired in 1970, same name, path and flags.

    @param config: the manager's configuration.
    @param request: the request being answered.
    @return: the header value.
    """
    scope = config.cookieAttributes[0]
    flags = _flags(config, request)
    return f"{config.cookie}=; {scope}; Expires={_EPOCH}; Max-Age=0{flags}".encode(
        "ascii"
    )


def _flags(config: Config, request: IRequest) -> str:
    """
    The flags ending a C{Set-Cookie} header in answer to C{request}.
    """
    _, plain, secure = config.cookieAttributes
    if config.secureOnly or not config.cookieSecureTLS:
        return plain
    return secure if cameOverTLS(request, config.trustProxyHeaders) else plain


def upsertCookie(request: IRequest, name: bytes, header: bytes) -> None:
    """
    Queue a C{Set-Cookie} value on a response, replacing any already queued
    for the same cookie name, so the client never receives two.

    @param request: the request being answered (before its headers are sent).
    @param name: the cookie name, encoded.
    @param header: the value built by L{sessionCookie} or L{deletionCookie}.
    """
    cookies: list[bytes] = request.cookies  # type: ignore[attr-defined]
    if cookies:
        removeCookie(request, name)
    cookies.append(header)


def removeCookie(request: IRequest, name: bytes) -> None:
    """
    Withdraw a queued C{Set-Cookie} for a cookie name, if there is one.

    @param request: the request being answered (before its headers are sent).
    @param name: the cookie name, encoded.
    """
    prefix = name + b"="
    cookies: list[bytes] = request.cookies  # type: ignore[attr-defined]
    cookies[:] = [c for c in cookies if not c.startswith(prefix)]


def markPrivate(request: IRequest) -> None:
    """
    Keep shared caches from storing a response that depends on a session:
    add C{Vary: Cookie}, and make C{Cache-Control} C{private} (dropping a
    C{public}) unless it already says C{private} or C{no-store}.

    @param request: the request being answered (before its headers are sent).
    """
    headers = request.responseHeaders
    if markPrivateIfBare(headers):
        return
    vary = headers.getRawHeaders(b"vary")
    if vary is None:
        headers.setRawHeaders(b"Vary", [b"Cookie"])
    else:
        tokens = {t.strip().lower() for value in vary for t in value.split(b",")}
        if b"cookie" not in tokens and b"*" not in tokens:
            headers.addRawHeader(b"Vary", b"Cookie")
    cacheControl = headers.getRawHeaders(b"cache-control")
    if cacheControl is None:
        headers.setRawHeaders(b"Cache-Control", [b"private"])
        return
    directives = [d.strip() for value in cacheControl for d in value.split(b",")]
    directives = [d for d in directives if d]
    lowered = [d.lower() for d in directives]
    if b"private" in lowered or b"no-store" in lowered:
        return
    kept = [d for d in directives if d.lower() != b"public"]
    headers.setRawHeaders(b"Cache-Control", [b", ".join([b"private", *kept])])
