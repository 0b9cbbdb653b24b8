"""
The 35 bad inputs of ../shared/security.md, each with its documented
outcome: the status, whether a Set-Cookie was sent, that no session data
leaked, and that the store did not grow.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from twisted.logger import globalLogPublisher

from tests.apps import kvApp, kvBrowser
from tests.support import Browser, cookieValue, get, rawHTTP, resultOf, setCookies
from txsessions import Config, DestroyReason, Sessions, ValueNotSerializable
from txsessions.codec import CookieCodec, generateKey
from txsessions.ids import storeKey
from txsessions.interfaces import SessionChanges

COOKIE = "sid"
SECRET = "victim-data"
OLD, CURRENT, RETIRED, UNKNOWN = (generateKey() for _ in range(4))


class World:
    """
    A manager (with or without the codec), a victim session holding
    L{SECRET}, and helpers to attack it.
    """

    def __init__(self, clock: Any, **config: Any) -> None:
        self.clock = clock
        self.sessions = Sessions(Config(cookie=COOKIE, **config), clock=clock)
        self.browser = Browser(self.sessions.wrap(kvApp(self.sessions).resource()))
        response, _ = self.browser.get(f"/set/secret/{SECRET}")
        self.victim = cookieValue(response, COOKIE)
        self.before = self.count()

    def count(self) -> int:
        return resultOf(self.sessions.count())

    def read(
        self,
        cookies: dict[str, str] | None = None,
        headers: dict[bytes, list[bytes]] | None = None,
        path: str = "/all",
        method: str = "GET",
    ) -> tuple[Any, dict[str, Any]]:
        response, body = self.browser.request(method, path, cookies, headers)
        assert response.code == 200
        assert SECRET.encode() not in body
        return response, json.loads(body) if path.startswith("/all") else {}

    def assertNothingHappened(self, response: Any, data: dict[str, Any]) -> None:
        assert setCookies(response) == []
        assert data == {"isNew": True, "values": {}}
        assert self.count() == self.before

    def assertNewSessionOnWrite(self, cookies: dict[str, str]) -> None:
        response, _ = self.browser.get("/set/k/v", cookies)
        issued = cookieValue(response, COOKIE)
        assert issued not in cookies.values()
        assert self.count() == self.before + 1


@pytest.fixture
def plain(clock: Any) -> World:
    return World(clock)


def codec(*keys: bytes, clock: Any = None) -> CookieCodec:
    return CookieCodec(list(keys), maxAge=3600, clock=(clock or (lambda: 1e9)))


@pytest.fixture
def sealed(clock: Any) -> World:
    return World(
        clock, encoding=codec(OLD, CURRENT, clock=lambda: 1e9 + clock.seconds())
    )


@pytest.fixture
def logged() -> Any:
    events: list[dict[str, Any]] = []
    observer: Any = events.append
    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


def rawToken(world: World) -> bytes:
    return base64.urlsafe_b64decode(world.victim + "==")


def token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# 1-6: absent, empty, unknown and dead ids


def test_01_noCookieReadOnly(plain: World) -> None:
    plain.assertNothingHappened(*plain.read())


@pytest.mark.parametrize("value", [b"", b"%20", b'"  "', b"  "])
def test_02_03_emptyOrBlankIsAbsent(plain: World, value: bytes) -> None:
    plain.assertNothingHappened(*plain.read(headers={b"Cookie": [b"sid=" + value]}))


def test_04_neverIssuedIDIsNotAdopted(plain: World, logged: list[Any]) -> None:
    planted = {COOKIE: "P" * 43}
    plain.assertNothingHappened(*plain.read(planted))
    assert any(e.get("security") == "unknown" for e in logged)
    assert not any("P" * 43 in repr(e) for e in logged)
    plain.assertNewSessionOnWrite(planted)


def test_05_destroyedSession(plain: World) -> None:
    resultOf(plain.sessions.destroyByID(plain.victim))
    plain.before -= 1
    plain.assertNothingHappened(*plain.read({COOKIE: plain.victim}))
    plain.assertNewSessionOnWrite({COOKIE: plain.victim})


@pytest.mark.parametrize("timeout", ["idleTimeout", "absoluteTimeout"])
def test_06_idleOrAbsoluteExpiredSession(clock: Any, timeout: str) -> None:
    world = World(clock, **{timeout: 60})
    clock.rightNow = 60.0  # at the limit; no timer has run yet
    world.before = 0
    world.assertNothingHappened(*world.read({COOKIE: world.victim}))


def test_06_absoluteTimeoutHoldsWhileActive(clock: Any) -> None:
    world = World(clock, idleTimeout=60, absoluteTimeout=200)
    for _ in range(3):
        clock.advance(59)
        _, body = world.browser.get("/get/secret", {COOKIE: world.victim})
        assert json.loads(body) == SECRET
    # 236 s: active all along, but past the absolute timeout.
    clock.advance(59)
    _, data = world.read({COOKIE: world.victim})
    assert data["isNew"] is True


# 7-18: the signed and encrypted cookie


def test_07_flippedMACByte(sealed: World) -> None:
    raw = bytearray(rawToken(sealed))
    raw[-1] ^= 1
    sealed.assertNothingHappened(*sealed.read({COOKIE: token(bytes(raw))}))


def test_08_flippedPayloadByte(sealed: World) -> None:
    raw = bytearray(rawToken(sealed))
    raw[30] ^= 1
    sealed.assertNothingHappened(*sealed.read({COOKIE: token(bytes(raw))}))


def test_09_truncatedByOneCharacter(sealed: World) -> None:
    sealed.assertNothingHappened(*sealed.read({COOKIE: sealed.victim[:-1]}))


def test_10_noSignatureAtAll(sealed: World) -> None:
    sessionID = codec(CURRENT).decode(COOKIE, sealed.victim)
    for value in (f"s:{sessionID}", sessionID):
        sealed.assertNothingHappened(*sealed.read({COOKIE: value}))


def test_11_unknownKey(sealed: World) -> None:
    sessionID = codec(CURRENT).decode(COOKIE, sealed.victim)
    forged = codec(UNKNOWN).encode(COOKIE, sessionID)
    sealed.assertNothingHappened(*sealed.read({COOKIE: forged}))


def test_12_retiredKeyRefusedFallbackKeyReissued(sealed: World) -> None:
    sessionID = codec(CURRENT).decode(COOKIE, sealed.victim)
    retired = codec(RETIRED).encode(COOKIE, sessionID)
    sealed.assertNothingHappened(*sealed.read({COOKIE: retired}))
    older = codec(OLD).encode(COOKIE, sessionID)
    response, body = sealed.browser.get("/get/secret", {COOKIE: older})
    assert json.loads(body) == SECRET
    assert codec(CURRENT).decode(COOKIE, cookieValue(response, COOKIE)) == sessionID


def test_13_anotherCookiesValue(sealed: World) -> None:
    sessionID = codec(CURRENT).decode(COOKIE, sealed.victim)
    csrf = codec(CURRENT).encode("csrf", sessionID)
    sealed.assertNothingHappened(*sealed.read({COOKIE: csrf}))


def test_14_expiredAndFutureTimestamps(sealed: World, clock: Any) -> None:
    sessionID = codec(CURRENT).decode(COOKIE, sealed.victim)
    future = CookieCodec([CURRENT], clock=lambda: 1e9 + 3600).encode(COOKIE, sessionID)
    sealed.assertNothingHappened(*sealed.read({COOKIE: future}))
    clock.advance(3601)
    sealed.assertNothingHappened(*sealed.read({COOKIE: sealed.victim}))


def test_15_malformedTimestamp(sealed: World) -> None:
    raw = rawToken(sealed)
    sealed.assertNothingHappened(*sealed.read({COOKIE: token(raw[:8])}))
    sealed.assertNothingHappened(*sealed.read({COOKIE: sealed.victim[:5] + "_" * 12}))


@pytest.mark.parametrize(
    "junk",
    [
        "!!!",
        "====",
        "ab+/cd-_",
        token(b""),
        token(b" "),
        token(b"\n"),
        token(b"||"),
        token(b"|||"),
        token(b"cookie"),
    ],
)
def test_16_base64Junk(sealed: World, junk: str) -> None:
    sealed.assertNothingHappened(
        *sealed.read(headers={b"Cookie": [b"sid=" + junk.encode()]})
    )


def test_17_paddingOrNot(sealed: World) -> None:
    padded = sealed.victim + "=" * (-len(sealed.victim) % 4)
    _, body = sealed.browser.get("/get/secret", {COOKIE: padded})
    assert json.loads(body) == SECRET


def test_18_rightMACOverAPayloadThatIsNoID(sealed: World) -> None:
    sealed.assertNothingHappened(
        *sealed.read({COOKIE: codec(CURRENT).encode(COOKIE, "{}")})
    )


# 19-24: payloads and values


PICKLE = "cos\nsystem\n(S'touch {}'\ntR."


def test_19_picklesAreNeverLoaded(plain: World, tmp_path: Any) -> None:
    sentinel = tmp_path / "pwned"
    payload = PICKLE.format(sentinel)
    plain.assertNothingHappened(
        *plain.read(headers={b"Cookie": [b"sid=" + payload.encode()]})
    )
    db: Any = plain.sessions.database
    db.save(storeKey(plain.victim), SessionChanges(updated={"secret": payload}))
    response, data = plain.read({COOKIE: plain.victim})
    assert data == {"isNew": True, "values": {}}
    assert not sentinel.exists()


def test_20_invalidUTF8(plain: World) -> None:
    plain.assertNothingHappened(*plain.read(headers={b"Cookie": [b"sid=\xff\xfe\xfd"]}))


def test_21_unicodeRoundTrips(plain: World) -> None:
    text = "\u2019 \N{GRINNING FACE} \U0001f600 \u00e9"
    app_sessions = plain.sessions
    from klein import Klein

    app = Klein()

    @app.route("/")
    @app_sessions.withSession
    def unicode(request: Any, session: Any) -> str:
        if session.isNew:
            session.set("t", text)
        return json.dumps(session.get("t"))

    browser = Browser(app.resource())
    response, _ = browser.get("/")
    _, body = browser.get("/", {COOKIE: cookieValue(response, COOKIE)})
    assert json.loads(body) == text


def test_22_nonJSONValuesAndKeysFailAtSet(plain: World) -> None:
    from tests.test_session import loaded

    session = loaded()
    for key, value in (("k", object()), ("k", b"bytes"), (1, "v"), ("k", float("nan"))):
        with pytest.raises(ValueNotSerializable):
            session.set(key, value)  # type: ignore[arg-type]


def test_23_oversizedCookieIsNeverDecoded(clock: Any) -> None:
    calls: list[str] = []

    class Spy(CookieCodec):
        def open(self, cookieName: str, value: str) -> Any:
            calls.append(value)
            return super().open(cookieName, value)

    world = World(clock, encoding=Spy([CURRENT], clock=lambda: 1e9))
    calls.clear()
    world.assertNothingHappened(*world.read({COOKIE: "A" * 5000}))
    assert calls == []


def test_24_largeDataStaysServerSide(plain: World) -> None:
    big = "x" * 10_000
    response, _ = plain.browser.get(f"/set/big/{big}", {COOKIE: plain.victim})
    assert response.code == 200 and setCookies(response) == []
    _, body = plain.browser.get("/get/big", {COOKIE: plain.victim})
    assert json.loads(body) == big
    assert len(plain.victim) == 43


# 25-33: headers, ids and where they come from


def test_25_oversizedHeadersAndJunkCookies(plain: World) -> None:
    out = rawHTTP(
        plain.sessions.wrap(kvApp(plain.sessions).resource()),
        get(b"/all", b"Cookie: " + b"j" * 17_000 + b"\r\n"),
    ).value()
    assert not out.startswith(b"HTTP/1.1 500")
    junk = "; ".join(f"junk{i}={'x' * 10}" for i in range(1000))[:15_000]
    plain.assertNothingHappened(*plain.read(headers={b"Cookie": [junk.encode()]}))


def test_26_severalValuesOnlyOneThatExistsCounts(
    plain: World, logged: list[Any]
) -> None:
    for order in ((plain.victim, "P" * 43), ("P" * 43, plain.victim)):
        header = "; ".join(f"sid={v}" for v in order).encode()
        _, body = plain.browser.request(
            "GET", "/get/secret", headers={b"Cookie": [header]}
        )
        assert json.loads(body) == SECRET
    header = f"sid={'P' * 43}; sid={'Q' * 43}".encode()
    plain.assertNothingHappened(*plain.read(headers={b"Cookie": [header]}))
    assert any(e.get("security") == "several" for e in logged)


@pytest.mark.parametrize("kind", ["plain", "sealed"])
def test_26_junkPlantedFirstDoesNotHideTheClientsCookie(
    request: Any, kind: str, logged: list[Any]
) -> None:
    """
    Values that fail their checks (a bad seal, a malformed id) before the
    client's own cookie, as a sibling subdomain may plant them, neither
    hide it nor flood the log: one line for all of them.  (Before the fix,
    the first three values were the only ones read, checked or not: three
    junk values logged the user out.)
    """
    world: World = request.getfixturevalue(kind)
    junk = "; ".join(f"sid=junk{i}" for i in range(40))
    header = f"{junk}; sid={world.victim}".encode()
    _, body = world.browser.request("GET", "/get/secret", headers={b"Cookie": [header]})
    assert json.loads(body) == SECRET
    why = "tampered" if kind == "sealed" else "malformed"
    assert [e.get("n") for e in logged if e.get("security") == why] == [40]


def test_27_twoCookieHeaderLines(plain: World) -> None:
    headers = {b"Cookie": [b"a=1", b"sid=" + plain.victim.encode()]}
    _, body = plain.browser.request("GET", "/get/secret", headers=headers)
    assert json.loads(body) == SECRET


@pytest.mark.parametrize(
    "value", ["../../etc/passwd", "a/b" * 10, "a\\b" * 10, "A" * 620, "A" * 7, "A" * 21]
)
def test_28_29_pathsAndLengths(plain: World, value: str) -> None:
    plain.assertNothingHappened(
        *plain.read(headers={b"Cookie": [b"sid=" + value.encode()]})
    )


@pytest.mark.parametrize("bad", [b"\r\nX-Injected: 1", b"\x00", b"\n"])
def test_30_controlCharactersAreNeverEchoed(plain: World, bad: bytes) -> None:
    out = rawHTTP(
        plain.sessions.wrap(kvApp(plain.sessions).resource()),
        get(b"/all", b"Cookie: sid=AAAA" + bad + b"AAAA\r\n"),
    ).value()
    assert not out.startswith(b"HTTP/1.1 500")
    assert b"X-Injected" not in out.partition(b"\r\n\r\n")[0]
    assert plain.count() == plain.before


def test_30_semicolonEndsTheValue(plain: World) -> None:
    headers = {b"Cookie": [b"sid=" + plain.victim.encode() + b";evil"]}
    _, body = plain.browser.request("GET", "/get/secret", headers=headers)
    assert json.loads(body) == SECRET


def test_31_theStoreKeyIsNoCookie(plain: World) -> None:
    key = storeKey(plain.victim)
    for value in (key, "2::" + key):
        plain.assertNothingHappened(
            *plain.read(headers={b"Cookie": [b"sid=" + value.encode()]})
        )


def test_32_idsInTheURLOrBodyAreIgnored(plain: World) -> None:
    plain.assertNothingHappened(*plain.read(path=f"/all?sid={plain.victim}"))
    response, body = plain.browser.request(
        "POST",
        "/all",
        headers={b"Content-Type": [b"application/x-www-form-urlencoded"]},
    )
    assert json.loads(body)["isNew"] is True


def test_33_postWithAnUnknownCookieCreatesNothing(plain: World) -> None:
    plain.assertNothingHappened(*plain.read({COOKIE: "P" * 43}, method="POST"))


# 34-35: transport


def test_34_secureCookieNeverGoesOverPlainHTTP(clock: Any) -> None:
    sessions = Sessions(Config(cookie=COOKIE, forceSecureCookie=True), clock=clock)
    browser = kvBrowser(sessions)
    response, _ = browser.get("/set/a/1")
    assert response.code == 200 and setCookies(response) == []
    assert resultOf(sessions.count()) == 0
    secure = kvBrowser(sessions, "https://example.com")
    response, _ = secure.get("/set/a/1")
    assert "; Secure" in setCookies(response)[0]


def test_35_spoofedForwardedProtoIsNotTrusted(clock: Any) -> None:
    spoof = {b"X-Forwarded-Proto": [b"https"]}
    for trust, expected in ((False, 0), (True, 1)):
        sessions = Sessions(
            Config(cookie=COOKIE, forceSecureCookie=True, trustProxyHeaders=trust),
            clock=clock,
        )
        browser = kvBrowser(sessions)
        response, _ = browser.request("GET", "/set/a/1", headers=spoof)
        assert len(setCookies(response)) == expected
        assert resultOf(sessions.count()) == expected


def test_destroyEventsNeverCarryTheID(plain: World) -> None:
    events: list[Any] = []
    plain.sessions.onDestroy(lambda key, reason: events.append((key, reason)))
    resultOf(plain.sessions.destroyByID(plain.victim))
    assert events == [(storeKey(plain.victim), DestroyReason.destroyByID)]
