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
from typing import Literal

import attrs
from twisted.web.iweb import IRequest

from .cookies import checkCookieName, checkCookiePath
from .ids import generateSessionID

SameSite = Literal["lax", "strict", "none"]


def toSeconds(value: float | timedelta) -> float:
    """
    Convert a lifetime to seconds.

    @param value: seconds, or a L{timedelta}.
    @return: the number of seconds, finite and not negative.
    @raise ValueError: when C{value} is negative, infinite or not a number.
    """
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a lifetime is seconds or a timedelta, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"a lifetime must be finite and at least 0 (0 means none), not {value!r}"
        )
    return float(value)


def _checkSameSite(instance: object, attribute: object, value: object) -> None:
    if value not in ("lax", "strict", "none", None):
        raise ValueError(
            f"cookieSameSite must be 'lax', 'strict', 'none' or None, not {value!r}"
        )


@attrs.frozen
class Config:
    """
    The settings of a L{txsessions.Sessions} manager.

    @ivar cookie: the session cookie's name (Iris: C{Cookie}).
    @ivar expires: a session's lifetime in seconds (or a L{timedelta}); the
        cookie carries the same C{Max-Age}.  C{0}, the default, means no
        server-side lifetime and a cookie that lasts until the browser closes
        (Iris: C{Expires}).
    @ivar sessionIDGenerator: called with the request to make each new id
        (Iris: C{SessionIDGenerator}); the default draws 256 bits from
        L{secrets}.  An id it returns must be 22 to 128 URL-safe base64
        characters.
    @ivar cookiePath: the cookie's C{Path}.
    @ivar cookieHTTPOnly: whether the cookie is hidden from scripts.
    @ivar cookieSameSite: C{"lax"}, C{"strict"}, C{"none"} (which makes the
        cookie C{Secure}) or C{None} for no attribute.
    @ivar forceSecureCookie: add C{Secure} even to responses over plain HTTP,
        for servers behind a TLS-terminating proxy.  Without it, C{Secure} is
        added to every response to a request that came over TLS.
    """

    cookie: str = attrs.field(
        default="txsessionid", validator=lambda i, a, v: checkCookieName(v)
    )
    expires: float = attrs.field(default=0.0, converter=toSeconds)
    sessionIDGenerator: Callable[[IRequest], str] = generateSessionID
    cookiePath: str = attrs.field(
        default="/", validator=lambda i, a, v: checkCookiePath(v)
    )
    cookieHTTPOnly: bool = True
    cookieSameSite: SameSite | None = attrs.field(
        default="lax", validator=_checkSameSite
    )
    forceSecureCookie: bool = False
