# -*- test-case-name: tests.test_config -*-
"""
L{Config}: how a L{txsessions.Sessions} manager names, writes and expires its
sessions.  Validated when it is built, so a bad setting fails at start-up and
not on the first request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, Protocol

import attrs
from twisted.web.iweb import IRequest

from .cookies import (
    checkCookieDomain,
    checkCookieName,
    checkCookiePath,
    cookieAttributes,
)
from .csrf import DEFAULT_SETTINGS, CSRFSettings
from .ids import generateSessionID

SameSite = Literal["lax", "strict", "none"]


def toSeconds(value: float | timedelta) -> float:
    """
    Convert a lifetime to seconds.

    @param value: seconds, or a C{timedelta}.
    @return: the number of seconds, finite and not negative.
    @raise ValueError: when C{value} is negative, over 100 years or not a
        number.
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a lifetime is seconds or a timedelta, not {value!r}")
    # Compared before any conversion: an int too large for a float would
    # raise OverflowError in isfinite.
    if not (0 <= value <= MAX_LIFETIME) or not math.isfinite(value):
        raise ValueError(
            "a lifetime must be at least 0 (0 means none) and at most 100 years, "
            f"not {value!r}"
        )
    return float(value)


MAX_LIFETIME = 100 * 365.25 * 24 * 3600
"""
The longest lifetime, in seconds: 100 years.  Beyond it, or far beyond, a
cookie's C{Expires} date cannot be written.
"""


def _atLeastASecond(instance: object, attribute: Any, value: float) -> None:
    """
    Refuse a lifetime under a second: the cookie's C{Max-Age}, in whole
    seconds, would be 0, and the browser would drop the session at once.
    """
    if 0 < value < 1:
        raise ValueError(
            f"{attribute.name} must be at least 1 second; 0 means none, not {value!r}"
        )


def _checkSameSite(instance: object, attribute: object, value: Any) -> None:
    if value not in ("lax", "strict", "none", None):
        raise ValueError(
            f"cookieSameSite must be 'lax', 'strict', 'none' or None, not {value!r}"
        )


_isBool = attrs.validators.instance_of(bool)


def _switch(default: bool) -> Any:
    """
    A setting that is C{True} or C{False}, and nothing else: C{"false"}, as
    an environment variable gives it, would be true.
    """
    return attrs.field(default=default, validator=_isBool)


def _checkEncoding(instance: object, attribute: object, value: Any) -> None:
    if value is not None and not (
        callable(getattr(value, "encode", None))
        and callable(getattr(value, "decode", None))
    ):
        raise ValueError(
            "encoding needs encode(cookieName, value) and decode(cookieName, value)"
        )


def _checkSubdomains(instance: Config, attribute: object, value: bool) -> None:
    if not value and instance.cookieDomain is None:
        raise ValueError(
            "disableSubdomainPersistence=False needs cookieDomain: name the domain "
            "whose subdomains share the cookie"
        )


def checkCookieOutlives(config: Config, away: float) -> None:
    """
    Refuse a lifetime that a session may wait for its client longer than
    the configured encoding's cookie values last (its C{maxAge}, as
    L{txsessions.codec.CookieCodec} has): the client would be logged out
    early, its session left behind.

    @param config: the configuration.
    @param away: how long, in seconds, the session may wait.
    @raise ValueError: when it is longer.
    """
    maxAge = getattr(config.encoding, "maxAge", None)
    if not isinstance(maxAge, (int, float)):
        return
    if away > maxAge:
        raise ValueError(
            f"the encoding's cookie values expire after {maxAge:g} s (maxAge), "
            f"but a session may wait {away:g} s for its client: give the codec "
            "a maxAge at least as long, or the client is logged out early"
        )


class CookieEncoding(Protocol):
    """
    Turns a session id into a cookie value and back (Iris: C{Encoding}, as
    gorilla/securecookie provides it); L{txsessions.codec} has one that signs
    and encrypts.
    """

    def encode(self, cookieName: str, value: str) -> str:
        """
        @return: the cookie value carrying C{value}.
        """

    def decode(self, cookieName: str, value: str) -> str:
        """
        @return: the value a cookie value carries.
        @raise Exception: when it carries none (tampered, expired, foreign).
        """


COOKIE_OPTIONS = frozenset(
    {
        "cookiePath",
        "cookieDomain",
        "cookieSameSite",
        "cookieHTTPOnly",
        "cookieSecureTLS",
        "forceSecureCookie",
    }
)
"""
The settings L{txsessions.Sessions.start} may replace for one request.
"""


@attrs.frozen
class Config:
    """
    The settings of a L{txsessions.Sessions} manager.

    @ivar cookie: the session cookie's name (Iris: C{Cookie}).
    @ivar expires: a session's lifetime in seconds (or a C{timedelta}); the
        cookie carries the same C{Max-Age}.  C{0}, the default, means no
        server-side lifetime and a cookie that lasts until the browser closes
        (Iris: C{Expires}).
    @ivar sessionIDGenerator: called with the request to make each new id
        (Iris: C{SessionIDGenerator}); the default draws 256 bits from
        C{secrets}.  An id it returns must be 22 to 128 URL-safe base64
        characters.
    @ivar allowReclaim: after L{Session.destroy}, let
        L{txsessions.Sessions.start} in the same request begin a new session
        (its cookie replaces the deletion cookie).  Without it, C{start}
        returns the destroyed session (Iris: C{AllowReclaim}).
    @ivar encoding: turns session ids into cookie values and back, such as
        the signing and encrypting L{txsessions.codec.CookieCodec} (Iris:
        C{Encoding}); C{None} sends the id as it is.
    @ivar cookiePath: the cookie's C{Path}.
    @ivar cookieDomain: the cookie's C{Domain}, shared with its subdomains;
        C{None}, the default, makes a host-only cookie.
    @ivar disableSubdomainPersistence: whether the cookie stays with the host
        that set it; derived from C{cookieDomain} when not given.  C{True}
        with a C{cookieDomain} keeps the cookie host-only (no C{Domain}
        attribute), as for one request's cookie options; C{False} needs a
        C{cookieDomain} (Iris: the same name, but Iris shares the cookie
        with every subdomain by default).
    @ivar cookieHTTPOnly: whether the cookie is hidden from scripts.
    @ivar cookieSameSite: C{"lax"}, C{"strict"}, C{"none"} (which makes the
        cookie C{Secure}) or C{None} for no attribute.
    @ivar cookieSecureTLS: add C{Secure} to the cookie of a request that
        came over TLS (Iris: C{CookieSecureTLS}, off by default there).
    @ivar forceSecureCookie: always mark the cookie C{Secure}, and never
        send it in answer to a request that did not come over TLS (or, with
        C{trustProxyHeaders}, through a proxy that says it did).  Implied by
        the C{__Host-} and C{__Secure-} name prefixes and by
        C{cookieSameSite="none"}.
    @ivar trustProxyHeaders: believe C{X-Forwarded-Proto: https}, for
        servers behind a TLS-terminating proxy that sets it (and strips it
        from what clients send).  Off by default: a client could send it.
    @ivar idleTimeout: end a session after this many seconds (or a
        C{timedelta}) without a request; each request pushes the end back
        (with a write, at most once per twentieth of the timeout) and
        re-sends the cookie.  Cannot be combined with C{expires}, Iris's
        fixed lifetime.
    @ivar absoluteTimeout: end every session this long after it was created,
        whatever else extends it (C{idleTimeout}, C{updateExpiration}).
    @ivar databaseTimeout: how long, in seconds, any one database call may
        take before the request gets a 503 (0: no deadline).  A networked
        client may queue commands silently while disconnected; this is what
        keeps such a request from hanging.
    @ivar logSessionEvents: log each session's lifecycle (created,
        regenerated, destroyed, expired) at info level.  Off by default: on
        a busy server it is one log line per session, and the metrics
        (L{txsessions.metrics}) count them all anyway.  Security events (a
        tampered cookie, a retired key, a store failure) are always logged.
    @ivar lastSeenInterval: how often, at most, in seconds (or a
        C{timedelta}), a request writes the last-seen time of a session
        that has an owner (C{Session.setOwner}), as
        C{Sessions.sessionsOf} reports it: a read-only request costs no
        write until it is due.
    @ivar csrf: check every unsafe request (any method but GET, HEAD,
        OPTIONS and TRACE) under L{Sessions.wrap<txsessions.Sessions.wrap>}
        and under L{Sessions.withSession<txsessions.Sessions.withSession>}
        for a token from L{Session.csrfToken<txsessions.Session.csrfToken>}
        before the handler runs, refusing it with a 403 otherwise (see
        L{txsessions.csrf}).  Off by default, for compatibility.
    @ivar csrfSettings: trusted origins, exempt paths and proxy headers for
        that check (L{txsessions.csrf.CSRFSettings}); C{trustProxyHeaders}
        implies its C{trustProxyHeaders}.
    """

    cookie: str = attrs.field(
        default="txsessionid", validator=lambda i, a, v: checkCookieName(v)
    )
    expires: float = attrs.field(
        default=0.0, converter=toSeconds, validator=_atLeastASecond
    )
    sessionIDGenerator: Callable[[IRequest], str] = attrs.field(
        default=generateSessionID, validator=attrs.validators.is_callable()
    )
    allowReclaim: bool = _switch(False)
    encoding: CookieEncoding | None = attrs.field(
        default=None, validator=_checkEncoding
    )
    cookiePath: str = attrs.field(
        default="/", validator=lambda i, a, v: checkCookiePath(v)
    )
    cookieDomain: str | None = attrs.field(
        default=None, validator=lambda i, a, v: v is None or checkCookieDomain(v)
    )
    disableSubdomainPersistence: bool = attrs.field(
        default=attrs.Factory(lambda self: self.cookieDomain is None, takes_self=True),
        validator=[_isBool, _checkSubdomains],
    )
    cookieHTTPOnly: bool = _switch(True)
    cookieSameSite: SameSite | None = attrs.field(
        default="lax", validator=_checkSameSite
    )
    cookieSecureTLS: bool = _switch(True)
    forceSecureCookie: bool = _switch(False)
    trustProxyHeaders: bool = _switch(False)
    idleTimeout: float = attrs.field(
        default=0.0, converter=toSeconds, validator=_atLeastASecond
    )
    absoluteTimeout: float = attrs.field(
        default=0.0, converter=toSeconds, validator=_atLeastASecond
    )
    databaseTimeout: float = attrs.field(default=3.0, converter=toSeconds)
    logSessionEvents: bool = _switch(False)
    lastSeenInterval: float = attrs.field(default=300.0, converter=toSeconds)
    csrf: bool = _switch(False)
    csrfSettings: CSRFSettings = attrs.field(
        default=DEFAULT_SETTINGS, validator=attrs.validators.instance_of(CSRFSettings)
    )
    secureOnly: bool = attrs.field(init=False, eq=False, repr=False)
    """
    Whether the cookie must be C{Secure} and go only over TLS: forced, or
    implied by its name prefix or by C{SameSite=None}.  Derived from the
    other fields.
    """

    cookieAttributes: tuple[str, str, str] = attrs.field(
        init=False, eq=False, repr=False
    )
    """
    The cookie's attributes as C{Set-Cookie} writes them: its scope, and
    its flags over plain HTTP and over TLS (see
    L{txsessions.cookies.cookieAttributes}).  Derived from the other fields.
    """

    def __attrs_post_init__(self) -> None:
        object.__setattr__(
            self,
            "secureOnly",
            self.forceSecureCookie
            or self.cookieSameSite == "none"
            # Browsers read the prefixes in any case (RFC 6265bis 5.7).
            or self.cookie.lower().startswith(("__host-", "__secure-")),
        )
        object.__setattr__(self, "cookieAttributes", cookieAttributes(self))
        if self.trustProxyHeaders and not self.csrfSettings.trustProxyHeaders:
            # The CSRF check's own origin is the one the cookie is sent for.
            object.__setattr__(
                self,
                "csrfSettings",
                attrs.evolve(self.csrfSettings, trustProxyHeaders=True),
            )
        if self.idleTimeout and self.expires:
            raise ValueError(
                "expires is a fixed lifetime and idleTimeout a sliding one: choose "
                "one, and add absoluteTimeout for a hard limit"
            )
        # How long a client may stay away: an idle timeout bounds it, whatever
        # the absolute timeout; an active client's cookie is re-sealed well
        # before it expires.
        checkCookieOutlives(
            self, self.expires or self.idleTimeout or self.absoluteTimeout
        )
        if self.cookie.lower().startswith("__host-") and (
            self.cookiePath != "/" or self.cookieDomain is not None
        ):
            raise ValueError(
                "a __Host- cookie needs cookiePath='/' and no cookieDomain"
            )

    def withCookieOptions(self, **options: Any) -> Config:
        """
        @param options: cookie settings (L{COOKIE_OPTIONS}) to replace.
        @return: a copy with them replaced, validated.
        @raise TypeError: for a setting that is not a cookie setting.
        """
        unknown = set(options) - COOKIE_OPTIONS
        if unknown:
            raise TypeError(
                f"not cookie options: {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(COOKIE_OPTIONS))}"
            )
        if "cookieDomain" in options and "disableSubdomainPersistence" not in options:
            options["disableSubdomainPersistence"] = options["cookieDomain"] is None
        return attrs.evolve(self, **options)
