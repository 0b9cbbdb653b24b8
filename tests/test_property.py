"""
Arbitrary bytes as the session cookie: never a 500, and nothing reaches the
database but the store key of a well-formed id.  Arbitrary values and stored
texts: within the limits a value comes back as it went in, and decoding
anything fails only with the documented error.  Arbitrary headers, URLs and
form fields: the CSRF check answers, and never raises.

No example has a deadline: how long one takes depends on the machine's load,
and a test must not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from tests.apps import kvApp
from tests.support import ControlledDatabase, get, rawHTTP
from tests.test_session import new
from txsessions import Config, Sessions, ValueNotSerializable
from txsessions.codec import CookieCodec, generateKey
from txsessions.csrf import check, csrfToken
from txsessions.errors import ValueNotDecodable
from txsessions.ids import isWellFormedID, storeKey
from txsessions.values import MAX_DEPTH, decodeValue, encodeValue

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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitraryCookieBytes(value: bytes) -> None:
    cookie = b"sid=" + value
    out, loaded = serve(cookie)
    assert out.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400"))
    assert set(loaded) <= wellFormedKeys(cookie)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200)
)
def test_arbitrarySealedLookingCookies(value: str) -> None:
    codec = CookieCodec([KEY])
    out, loaded = serve(b"sid=" + value.encode(), encoding=codec)
    assert out.startswith((b"HTTP/1.1 200", b"HTTP/1.1 400"))
    assert loaded == []


json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=MAX_DEPTH + 3))
def test_valuesWithinTheLimitsRoundTripAndDeeperOnesAreRefused(
    value: Any, wrap: int
) -> None:
    for _ in range(wrap):
        value = [value]
    depth = _depth(value)
    if depth > MAX_DEPTH:
        with pytest.raises(ValueNotSerializable):
            encodeValue("k", value)
        with pytest.raises(ValueNotDecodable):
            decodeValue(json.dumps(value))
    else:
        assert decodeValue(encodeValue("k", value)) == value


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet='[]{}"\\ ,:1an-ulé\x00', max_size=300)
    | st.builds(lambda n, tail: "[" * n + tail, st.integers(0, 3000), st.text())
)
def test_decodingAnyTextAnswersOrRaisesValueNotDecodable(text: str) -> None:
    """
    Whatever a database holds, decoding it gives a value or the one
    documented error, never RecursionError or another exception.
    """
    try:
        decodeValue(text)
    except ValueNotDecodable:
        pass


header = st.none() | st.binary(max_size=120)


@settings(max_examples=500, deadline=None)
@given(
    token=header,
    origin=header,
    host=header,
    site=header,
    uri=st.binary(max_size=120),
    field=st.lists(st.binary(max_size=120), max_size=2),
)
def test_theCSRFCheckAnswersAnyRequest(
    token: bytes | None,
    origin: bytes | None,
    host: bytes | None,
    site: bytes | None,
    uri: bytes,
    field: list[bytes],
) -> None:
    """
    Whatever a request's headers, URL and form hold, the check answers; it
    never raises.
    """
    session = new()
    csrfToken(session)
    session.isNew = False
    request: Any = DummyRequest([b""])
    request.method = b"POST"
    request.uri = b"/change?" + uri
    request.args = {b"csrf_token": field} if field else {}
    for name, value in [
        (b"x-csrf-token", token),
        (b"origin", origin),
        (b"host", host),
        (b"sec-fetch-site", site),
    ]:
        if value is not None:
            request.requestHeaders.setRawHeaders(name, [value])
    # No random bytes make a valid token: the check refuses, with a reason.
    assert isinstance(check(request, session), str)
