"""
The signed and encrypted cookie codec, alone and in a manager.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.apps import kvApp, kvBrowser
from tests.support import Browser, cookieValue, resultOf, setCookies
from txsessions import Config, Sessions
from txsessions.codec import CodecError, CookieCodec, generateKey
from txsessions.ids import generateSessionID, storeKey

OLD, CURRENT, RETIRED, UNKNOWN = (generateKey() for _ in range(4))
NOW = 1_800_000_000.0


def codec(*keys: bytes, now: float = NOW, maxAge: float = 3600) -> CookieCodec:
    return CookieCodec(list(keys), maxAge=maxAge, clock=lambda: now)


def test_roundTrip() -> None:
    c = codec(CURRENT)
    value = c.encode("sid", "hello")
    assert c.decode("sid", value) == "hello"
    assert c.open("sid", value).current


def test_sealingTheSameValueTwiceDiffers() -> None:
    c = codec(CURRENT)
    assert c.encode("sid", "hello") != c.encode("sid", "hello")


def test_theValueIsNotVisible() -> None:
    sessionID = generateSessionID()
    token = codec(CURRENT).encode("sid", sessionID)
    assert sessionID not in token
    assert sessionID.encode() not in base64.urlsafe_b64decode(token + "==")


@pytest.mark.parametrize(
    "keys",
    [[], [b""], [b"short"], [b"x" * 31], [b"x" * 33], ["x" * 32], [CURRENT, CURRENT]],
)
def test_badKeysAreRefusedAtConstruction(keys: Any) -> None:
    with pytest.raises(ValueError):
        CookieCodec(keys)


@pytest.mark.parametrize(
    "key",
    [
        b"\0" * 32,
        b"x" * 32,
        b"correct horse battery staple!!!!",  # a password, not a key
        b"0123456789abcdef0123456789abcdef",  # hex text: 16 bytes of secret
        bytes(range(8)) * 4,  # a pattern
        # helper-26 found these accepted by the first version of the check:
        bytes(range(32)),
        bytes(range(16)) * 2,
        "Geheimes Passwort für Müllers!".encode(),
        b"\x00" + b"my-secret-password-is-secret-!!",
        bytes(range(255, 223, -1)),
    ],
)
def test_aKeyThatIsNoRandomBytesIsRefused(key: bytes) -> None:
    """
    A key of the right length that is text or a pattern (a password, hex
    digits, zeros) would let anyone who guesses it forge cookies: refused,
    naming the function that makes a good one.
    """
    assert len(key) == 32
    with pytest.raises(ValueError, match="generateKey"):
        CookieCodec([key])
    with pytest.raises(ValueError, match="generateKey"):
        CookieCodec([CURRENT, key])


def test_randomKeysAreAccepted() -> None:
    for _ in range(1000):
        CookieCodec([generateKey()])


def test_aSingleKeyMustBeInAList() -> None:
    with pytest.raises(ValueError, match="list"):
        CookieCodec(CURRENT)  # type: ignore[arg-type]


def test_badMaxAge() -> None:
    with pytest.raises(ValueError, match="maxAge"):
        CookieCodec([CURRENT], maxAge=0)


def test_everyFlippedByteFails() -> None:
    c = codec(CURRENT)
    raw = bytearray(base64.urlsafe_b64decode(c.encode("sid", "A" * 43) + "=="))
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        with pytest.raises(CodecError):
            c.open("sid", token)


def test_theCookieNameIsBound() -> None:
    c = codec(CURRENT)
    with pytest.raises(CodecError, match="verification"):
        c.open("csrf", c.encode("sid", "A" * 43))


def test_expiredAndFutureValuesFail() -> None:
    token = codec(CURRENT).encode("sid", "v")
    assert codec(CURRENT, now=NOW + 3600).decode("sid", token) == "v"
    with pytest.raises(CodecError, match="expired"):
        codec(CURRENT, now=NOW + 3601).decode("sid", token)
    with pytest.raises(CodecError, match="future"):
        codec(CURRENT, now=NOW - 3600).decode("sid", token)
    assert not codec(CURRENT, now=NOW + 1801).open("sid", token).current


def test_aValueSealedWithTheRightKeyButATamperedTimeFails() -> None:
    c = codec(CURRENT)
    raw = bytearray(base64.urlsafe_b64decode(c.encode("sid", "v") + "=="))
    struct.pack_into(">Q", raw, 5, int(NOW) + 10)
    token = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(CodecError, match="verification"):
        c.open("sid", token)


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "!!!",
        "====",
        "a+b/c",
        "s:" + "A" * 43,
        "A" * 43,
        "AAAA" * 5,
        "cookie",
        base64.urlsafe_b64encode(b"||").decode(),
        base64.urlsafe_b64encode(b" ").decode(),
        base64.urlsafe_b64encode(b"\n").decode(),
        "x" * 5000,
    ],
)
def test_junkFails(junk: str) -> None:
    with pytest.raises(CodecError):
        codec(CURRENT).open("sid", junk)


def test_paddingIsOptional() -> None:
    c = codec(CURRENT)
    token = c.encode("sid", "v" * 5)
    padded = token + "=" * (-len(token) % 4)
    assert c.decode("sid", padded) == "v" * 5


def test_aForeignPayloadUnderTheRightKeyIsNoID() -> None:
    # The MAC is right but what it carries is no id: the manager refuses it.
    c = codec(CURRENT)
    token = c.encode("sid", "not an id!")
    assert c.decode("sid", token) == "not an id!"


def test_nonASCIIPayloadFails() -> None:
    c = codec(CURRENT)
    header = struct.pack(">B4sQ12s", 1, c._newestID, int(NOW), b"\x00" * 12)
    sealed = AESGCM(CURRENT).encrypt(b"\x00" * 12, "é".encode(), c._aad("sid", header))
    token = base64.urlsafe_b64encode(header + sealed).rstrip(b"=").decode()
    with pytest.raises(CodecError, match="no id"):
        c.open("sid", token)


def test_outgoingValuesAreLimited() -> None:
    with pytest.raises(CodecError, match="4096"):
        codec(CURRENT).encode("sid", "x" * 4000)


# The key-rotation matrix: {current, older, retired, unknown} x {read, write}.


def sealedWith(key: bytes) -> str:
    return codec(key).encode("sid", "A" * 43)


def test_readWithTheCurrentKey() -> None:
    opened = codec(OLD, CURRENT).open("sid", sealedWith(CURRENT))
    assert opened.value == "A" * 43 and opened.current


def test_readWithAnOlderKeyAsksForReissue() -> None:
    opened = codec(OLD, CURRENT).open("sid", sealedWith(OLD))
    assert opened.value == "A" * 43 and not opened.current


def test_readWithARetiredKeyFails() -> None:
    with pytest.raises(CodecError, match="unknown key"):
        codec(OLD, CURRENT).open("sid", sealedWith(RETIRED))


def test_readWithAnUnknownKeyFails() -> None:
    with pytest.raises(CodecError, match="unknown key"):
        codec(OLD, CURRENT).open("sid", sealedWith(UNKNOWN))


def test_writeAlwaysUsesTheNewestKey() -> None:
    token = codec(OLD, CURRENT).encode("sid", "v")
    assert codec(CURRENT).decode("sid", token) == "v"
    with pytest.raises(CodecError):
        codec(OLD).decode("sid", token)


# In a manager


@pytest.fixture
def rotating(clock: Any) -> Any:
    def make(*keys: bytes) -> tuple[Sessions, Browser]:
        sessions = Sessions(Config(cookie="sid", encoding=codec(*keys)), clock=clock)
        return sessions, kvBrowser(sessions)

    return make


def test_managerReissuesACookieSealedWithAnOlderKey(rotating: Any) -> None:
    sessions, browser = rotating(OLD)
    response, _ = browser.get("/set/a/1")
    oldToken = cookieValue(response, "sid")
    # The same store, a rotated key list:
    rotated = Sessions(
        Config(cookie="sid", encoding=codec(OLD, CURRENT)), sessions.database
    )
    rotatedBrowser = Browser(rotated.wrap(kvApp(rotated).resource()))
    response, body = rotatedBrowser.get("/get/a", {"sid": oldToken})
    assert body == b'"1"'
    newToken = cookieValue(response, "sid")
    assert codec(CURRENT).decode("sid", newToken) == codec(OLD).decode("sid", oldToken)
    response, _ = rotatedBrowser.get("/get/a", {"sid": newToken})
    assert setCookies(response) == []


@pytest.mark.parametrize("key", [RETIRED, UNKNOWN])
def test_managerRefusesRetiredAndUnknownKeys(rotating: Any, key: bytes) -> None:
    sessions, browser = rotating(key)
    response, _ = browser.get("/set/a/1")
    token = cookieValue(response, "sid")
    rotated = Sessions(
        Config(cookie="sid", encoding=codec(OLD, CURRENT)), sessions.database
    )
    response, body = Browser(rotated.wrap(kvApp(rotated).resource())).get(
        "/all", {"sid": token}
    )
    assert response.code == 200 and b'"isNew": true' in body
    assert setCookies(response) == []


def test_managerStoresByTheRawID(rotating: Any) -> None:
    sessions, browser = rotating(CURRENT)
    response, _ = browser.get("/set/a/1")
    sessionID = codec(CURRENT).decode("sid", cookieValue(response, "sid"))
    assert resultOf(sessions.database.load(storeKey(sessionID))) is not None


def test_aBareIDIsRefusedWhenACodecIsConfigured(rotating: Any) -> None:
    sessions, browser = rotating(CURRENT)
    response, _ = browser.get("/set/a/1")
    sessionID = codec(CURRENT).decode("sid", cookieValue(response, "sid"))
    response, body = browser.get("/all", {"sid": sessionID})
    assert b'"isNew": true' in body


@pytest.mark.parametrize(
    "lifetime",
    [{"expires": 3601}, {"idleTimeout": 3601}, {"absoluteTimeout": 3601}],
)
def test_aSessionOutlivingItsCookiesIsAConfigurationError(lifetime: Any) -> None:
    """
    A client may stay away as long as its session lives: a codec whose
    sealed values expire sooner would log it out early, its session left
    behind.  Said when the configuration is made, not weeks later.
    """
    with pytest.raises(ValueError, match="maxAge"):
        Config(encoding=CookieCodec([CURRENT], maxAge=3600), **lifetime)


@pytest.mark.parametrize(
    "lifetime",
    [
        {},
        {"expires": 3600},
        {"idleTimeout": 3600, "absoluteTimeout": 7 * 86400},
        {"absoluteTimeout": 3600},
    ],
)
def test_aCodecOutlivingTheSessionsIsFine(lifetime: Any) -> None:
    """
    An idle timeout bounds how long a client stays away, whatever the
    absolute timeout: an active client's cookie is re-sealed long before
    it expires.
    """
    config = Config(encoding=CookieCodec([CURRENT], maxAge=3600), **lifetime)
    assert config.encoding is not None
