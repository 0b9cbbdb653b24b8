from __future__ import annotations

from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from txsessions import Config
from txsessions.cookies import (
    deletionCookie,
    readCookie,
    removeCookie,
    sessionCookie,
    upsertCookie,
)


def request(secure: bool = False) -> Request:
    r = Request(DummyChannel())
    r.isSecure = lambda: secure  # type: ignore[method-assign]
    return r


def test_sessionCookieAttributes() -> None:
    header = sessionCookie(Config(cookie="sid"), request(), "v" * 43, None, 0)
    assert header == b"sid=" + b"v" * 43 + b"; Path=/; HttpOnly; SameSite=Lax"


def test_sessionCookieWithALifetime() -> None:
    header = sessionCookie(Config(cookie="sid"), request(), "v", 3599.6, 86400)
    assert b"; Expires=Fri, 02 Jan 1970 01:00:00 GMT; Max-Age=3600;" in header


def test_secureOnTLSOnly() -> None:
    config = Config()
    assert b"; Secure" in sessionCookie(config, request(secure=True), "v", None, 0)
    assert b"Secure" not in sessionCookie(config, request(secure=False), "v", None, 0)


def test_secureForcedForProxies() -> None:
    header = sessionCookie(Config(forceSecureCookie=True), request(), "v", None, 0)
    assert b"; Secure" in header


def test_sameSiteNoneIsAlwaysSecure() -> None:
    header = sessionCookie(Config(cookieSameSite="none"), request(), "v", None, 0)
    assert header.endswith(b"; Secure; SameSite=None")


def test_strictAndAbsentSameSite() -> None:
    assert sessionCookie(
        Config(cookieSameSite="strict"), request(), "v", None, 0
    ).endswith(b"SameSite=Strict")
    assert b"SameSite" not in sessionCookie(
        Config(cookieSameSite=None), request(), "v", None, 0
    )


def test_deletionCookieExpiresAtTheEpoch() -> None:
    header = deletionCookie(Config(cookie="sid", cookiePath="/app"), request())
    assert header == (
        b"sid=; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; "
        b"HttpOnly; SameSite=Lax"
    )


def test_upsertReplacesTheSameCookieOnly() -> None:
    r = request()
    r.cookies = [b"other=1", b"sid=old"]
    upsertCookie(r, b"sid", b"sid=new")
    upsertCookie(r, b"sid", b"sid=newer")
    assert r.cookies == [b"other=1", b"sid=newer"]
    removeCookie(r, b"sid")
    assert r.cookies == [b"other=1"]


def test_readCookieIgnoresEmptyAndNonASCIIValues() -> None:
    r = request()
    assert readCookie(r, b"sid") is None
    for raw, expected in [
        (b"", None),
        (b"  ", None),
        (b"\xff\xfe", None),
        (b"ab", "ab"),
    ]:
        r.received_cookies = {b"sid": raw}
        assert readCookie(r, b"sid") == expected
