"""
Arbitrary bytes as the session cookie: never a 500, and nothing reaches the
database but the store key of a well-formed id.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from tests.apps import kvApp
from tests.support import ControlledDatabase, get, rawHTTP
from txsessions import Config, Sessions
from txsessions.codec import CookieCodec, generateKey
from txsessions.ids import isWellFormedID, storeKey

KEY = generateKey()


def wellFormedKeys(header: bytes) -> set[str]:
    keys = set()
    for part in header.split(b";"):
        name, _, value = part.strip().partition(b"=")
        try:
            text = value.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if name == b"sid" and isWellFormedID(text):
            keys.add(storeKey(text))
    return keys


def serve(cookie: bytes, **config: Any) -> tuple[bytes, list[str]]:
    clock = Clock()
    db = ControlledDatabase(clock)
    loaded: list[str] = []
    load = db.load

    def spy(key: str) -> Any:
        loaded.append(key)
        return load(key)

    db.load = spy  # type: ignore[method-assign]
    sessions = Sessions(Config(cookie="sid", **config), db, clock)
    resource = sessions.wrap(kvApp(sessions).resource())
    out = rawHTTP(resource, get(b"/all", b"Cookie: " + cookie + b"\r\n")).value()
    return out, loaded


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitraryCookieBytes(value: bytes) -> None:
    cookie = b"sid=" + value
    out, loaded = serve(cookie)
    assert out.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400"))
    assert set(loaded) <= wellFormedKeys(cookie)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200)
)
def test_arbitrarySealedLookingCookies(value: str) -> None:
    codec = CookieCodec([KEY])
    out, loaded = serve(b"sid=" + value.encode(), encoding=codec)
    assert out.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400"))
    assert loaded == []
