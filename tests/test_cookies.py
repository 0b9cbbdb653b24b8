from __future__ import annotations

import pytest
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from txsessions import Config
from txsessions.cookies import (
    deletionCookie,
    isSecureRequest,
    markPrivate,
    readCookies,
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


def withCookies(*headers: bytes) -> Request:
    r = request()
    r.requestHeaders.setRawHeaders(b"cookie", list(headers))
    return r


def test_readCookiesIgnoresEmptyOversizedAndNonASCIIValues() -> None:
    assert readCookies(request(), b"sid") == []
    r = withCookies(b"sid=; other=1", b"sid=  ", b"sid=\xff\xfe", b"sid=" + b"x" * 4097)
    assert readCookies(r, b"sid") == []
    assert readCookies(withCookies(b"sid=ab"), b"sid") == ["ab"]


def test_readCookiesFindsEveryCandidateInOrder() -> None:
    r = withCookies(b"sid=A; x=1; sid=B", b"sidx=C; sid=A; sid=C")
    assert readCookies(r, b"sid") == ["A", "B", "C"]


def test_readCookiesReadsEveryDistinctValue() -> None:
    """
    Every value is read, once: the cap on how many ids a request may offer
    counts only those that pass their checks (L{sessionIDs}), so junk sent
    first cannot hide the client's own cookie.
    """
    r = withCookies(b"; ".join(b"sid=%d" % (i % 50) for i in range(100)))
    assert readCookies(r, b"sid") == [str(i) for i in range(50)]


def test_proxyHeadersAreTrustedOnlyWhenConfigured() -> None:
    r = request()
    r.requestHeaders.setRawHeaders(b"x-forwarded-proto", [b"https"])
    assert not isSecureRequest(Config(), r)
    assert isSecureRequest(Config(trustProxyHeaders=True), r)
    r.requestHeaders.setRawHeaders(b"x-forwarded-proto", [b"http, https"])
    assert not isSecureRequest(Config(trustProxyHeaders=True), r)


def test_hostPrefixNeedsRootPathAndNoDomain() -> None:
    import pytest

    assert Config(cookie="__Host-sid").secureOnly
    assert Config(cookie="__Secure-sid").secureOnly
    with pytest.raises(ValueError, match="__Host-"):
        Config(cookie="__Host-sid", cookiePath="/app")
    with pytest.raises(ValueError, match="__Host-"):
        Config(cookie="__Host-sid", cookieDomain="example.com")


@pytest.mark.parametrize("name", ["__host-sid", "__HOST-sid", "__HoSt-sid"])
def test_aHostPrefixInAnyCaseIsAHostPrefix(name: str) -> None:
    """
    Browsers read the cookie prefixes in any case (RFC 6265bis 5.7), and
    drop a C{__host-} cookie that breaks their rules: the configuration
    refuses it, and makes it Secure only (helper-44: only the exact case
    was checked, and the cookie went out without C{Secure}).
    """
    with pytest.raises(ValueError, match="__Host-"):
        Config(cookie=name, cookiePath="/app")
    with pytest.raises(ValueError, match="__Host-"):
        Config(cookie=name, cookieDomain="example.com")
    assert Config(cookie=name).secureOnly
    assert Config(cookie=name.replace("host", "secure").replace("HOST", "SECURE"))
    assert Config(cookie="__secure-sid").secureOnly
    assert Config(cookie="__SECURE-sid").secureOnly


def test_markPrivate() -> None:
    r = request()
    markPrivate(r)
    assert r.responseHeaders.getRawHeaders(b"vary") == [b"Cookie"]
    assert r.responseHeaders.getRawHeaders(b"cache-control") == [b"private"]
    r = request()
    r.responseHeaders.setRawHeaders(b"vary", [b"Accept-Encoding"])
    r.responseHeaders.setRawHeaders(b"cache-control", [b"public, max-age=60"])
    markPrivate(r)
    assert r.responseHeaders.getRawHeaders(b"vary") == [b"Accept-Encoding", b"Cookie"]
    assert r.responseHeaders.getRawHeaders(b"cache-control") == [b"private, max-age=60"]
    r = request()
    r.responseHeaders.setRawHeaders(b"cache-control", [b"no-store"])
    r.responseHeaders.setRawHeaders(b"vary", [b"cookie"])
    markPrivate(r)
    assert r.responseHeaders.getRawHeaders(b"cache-control") == [b"no-store"]
    assert r.responseHeaders.getRawHeaders(b"vary") == [b"cookie"]


def test_markPrivateAddsCookieBesideHeadersNamedLikeIt() -> None:
    r = request()
    r.responseHeaders.setRawHeaders(b"vary", [b"X-Cookie-Consent"])
    markPrivate(r)
    assert r.responseHeaders.getRawHeaders(b"vary") == [b"X-Cookie-Consent", b"Cookie"]


def test_readCookiesTrustsOnlyTheHeaderItReads() -> None:
    """
    Twisted parses cookies when the request arrives; a header rewritten
    since (by a proxy resource, say) is what counts.
    """
    r = request()
    r.received_cookies = {b"sid": b"O" * 43}
    r.requestHeaders.setRawHeaders(b"cookie", [b"sid=" + b"N" * 43])
    assert readCookies(r, b"sid") == ["N" * 43]
