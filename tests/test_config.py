from __future__ import annotations

from datetime import timedelta

import pytest

from txsessions import Config
from txsessions.ids import generateSessionID


def test_defaults() -> None:
    config = Config()
    assert config.cookie == "txsessionid"
    assert config.expires == 0
    assert config.sessionIDGenerator is generateSessionID
    assert config.cookiePath == "/"
    assert config.cookieHTTPOnly is True
    assert config.cookieSameSite == "lax"
    assert config.forceSecureCookie is False


def test_expiresTakesSecondsOrTimedelta() -> None:
    assert Config(expires=90).expires == 90.0
    assert Config(expires=timedelta(minutes=2)).expires == 120.0
    assert Config(expires=1.5).expires == 1.5


@pytest.mark.parametrize("name", ["expires", "idleTimeout", "absoluteTimeout"])
@pytest.mark.parametrize("seconds", [0.4, timedelta(milliseconds=999)])
def test_aLifetimeUnderASecondIsRefused(name: str, seconds: object) -> None:
    """
    A lifetime under a second was taken, and every cookie went out with
    C{Max-Age=0}: the browser dropped each session at once.
    """
    with pytest.raises(
        ValueError, match=f"^{name} must be at least 1 second; 0 means none"
    ):
        Config(**{name: seconds})  # type: ignore[arg-type]
    assert getattr(Config(**{name: 1}), name) == 1.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [-1, float("nan"), float("inf"), "10", True, None, 1e17, 1e300]
)
def test_expiresRefusesWhatIsNotALifetime(bad: object) -> None:
    # 1e17 and 1e300 (helper-26) were taken, and every request then failed
    # writing the cookie's Expires date.
    with pytest.raises(ValueError, match="lifetime"):
        Config(expires=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["expires", "idleTimeout", "absoluteTimeout"])
def test_anIntegerTooLargeForAFloatIsNoLifetime(name: str) -> None:
    """
    An integer lifetime too large for a float is refused with the same
    C{ValueError} as any other: it was an C{OverflowError} (helper-38).
    """
    with pytest.raises(ValueError, match="100 years"):
        Config(**{name: 10**400})  # type: ignore[arg-type]


def test_aHundredYearsIsTheLongestLifetime() -> None:
    hundredYears = 100 * 365.25 * 24 * 3600
    assert Config(expires=hundredYears).expires == hundredYears
    with pytest.raises(ValueError, match="100 years"):
        Config(idleTimeout=hundredYears + 1)


@pytest.mark.parametrize(
    "name", ["", "a b", "a;b", "a=b", "a,b", "x\r\nSet-Cookie: y", "sid\x00", "é", 5]
)
def test_cookieNameMustBeAToken(name: object) -> None:
    with pytest.raises(ValueError, match="cookie name"):
        Config(cookie=name)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["", "admin", "/a;b", "/a b", "/a,b", "/\n"])
def test_cookiePathIsChecked(path: str) -> None:
    with pytest.raises(ValueError, match="cookie path"):
        Config(cookiePath=path)


def test_sameSiteIsOneOfThree() -> None:
    assert Config(cookieSameSite="strict").cookieSameSite == "strict"
    assert Config(cookieSameSite=None).cookieSameSite is None
    with pytest.raises(ValueError, match="cookieSameSite"):
        Config(cookieSameSite="Lax")  # type: ignore[arg-type]


def test_configIsFrozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.cookie = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "name",
    [
        "allowReclaim",
        "cookieHTTPOnly",
        "cookieSecureTLS",
        "forceSecureCookie",
        "trustProxyHeaders",
        "logSessionEvents",
        "csrf",
    ],
)
@pytest.mark.parametrize("value", ["false", "0", 1, None])
def test_aSwitchIsTrueOrFalse(name: str, value: object) -> None:
    """
    A switch is C{True} or C{False}: C{trustProxyHeaders="false"}, as an
    environment variable gives it, is refused, not taken as true.
    """
    with pytest.raises(TypeError, match=name):
        Config(**{name: value})  # type: ignore[arg-type]


def test_theSessionIDGeneratorIsCallable() -> None:
    with pytest.raises(TypeError, match="sessionIDGenerator"):
        Config(sessionIDGenerator=None)  # type: ignore[arg-type]


def test_theOtherSwitchesAreTrueOrFalseToo() -> None:
    """
    C{disableSubdomainPersistence} and the CSRF settings' own
    C{trustProxyHeaders} take C{True} or C{False} only, as Config's other
    switches do.
    """
    from txsessions.csrf import CSRFSettings

    with pytest.raises(TypeError, match="disableSubdomainPersistence"):
        Config(cookieDomain="example.com", disableSubdomainPersistence="false")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="trustProxyHeaders"):
        CSRFSettings(trustProxyHeaders="false")  # type: ignore[arg-type]
