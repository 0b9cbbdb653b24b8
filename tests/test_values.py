"""
Tests for L{txsessions.values}: the limits on what a session value may be,
and reading back whatever a database holds without failing the request.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import COOKIE, Browser, login
from tests.test_session import loaded
from txsessions import Sessions, ValueNotSerializable
from txsessions.errors import ValueNotDecodable
from txsessions.ids import storeKey
from txsessions.interfaces import SessionChanges
from txsessions.session import takeChanges
from txsessions.values import (
    MAX_DEPTH,
    MAX_VALUE_BYTES,
    decodeValue,
    encodeValue,
    integerOrZero,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """
    @return: C{leaf} inside C{depth} lists.
    """
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nestedText(depth: int) -> str:
    """
    @return: the JSON text of C{depth} empty lists, one inside the other.
    """
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 960, 5000])
def test_setRefusesAValueNestedTooDeep(depth: int) -> None:
    session = loaded()
    with pytest.raises(ValueNotSerializable, match=f"nested more than {MAX_DEPTH}"):
        session.set("k", nested(depth))
    assert "k" not in session
    assert takeChanges(session).updated == {}


def test_setRefusesADictNestedTooDeep() -> None:
    value: Any = {}
    for _ in range(MAX_DEPTH + 1):
        value = {"a": value}
    with pytest.raises(ValueNotSerializable, match="nested"):
        loaded().set("k", value)


def test_setAcceptsAValueAtTheDepthLimit() -> None:
    session = loaded()
    session.set("k", nested(MAX_DEPTH))
    assert session.get("k") == nested(MAX_DEPTH)


def test_bracketsInsideStringsAreNotNesting() -> None:
    session = loaded()
    value = ["[" * 1000 + "{" * 1000, '\\"[[[[', "]" * 10]
    session.set("k", value)
    assert decodeValue(takeChanges(session).updated["k"]) == value


@pytest.mark.parametrize("method", ["setImmutable", "setFlash"])
def test_everyWriterRefusesAValueNestedTooDeep(method: str) -> None:
    with pytest.raises(ValueNotSerializable):
        getattr(loaded(), method)("k", nested(5000))


def test_setRefusesAValueLargerThanTheLimit() -> None:
    session = loaded()
    with pytest.raises(ValueNotSerializable, match="bytes encoded"):
        session.set("k", "x" * (MAX_VALUE_BYTES - 1))
    assert "k" not in session


def test_theSizeLimitCountsUTF8Bytes() -> None:
    # 'é' is one character and two bytes: the text is well under the limit
    # in characters and over it in bytes.
    with pytest.raises(ValueNotSerializable, match="bytes encoded"):
        loaded().set("k", "é" * (MAX_VALUE_BYTES // 2))


def test_setAcceptsAValueAtTheSizeLimit() -> None:
    session = loaded()
    value = "x" * (MAX_VALUE_BYTES - 2)  # and two quotes
    session.set("k", value)
    assert len(takeChanges(session).updated["k"]) == MAX_VALUE_BYTES


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 960, 5000, 100_000])
def test_decodingARecordNestedTooDeepRaisesValueNotDecodable(depth: int) -> None:
    with pytest.raises(ValueNotDecodable, match="nested"):
        decodeValue(nestedText(depth))


def test_decodingSpacedJSONNestedTooDeepRaisesValueNotDecodable() -> None:
    # Not the compact form encodeValue writes: the full decoder reads it.
    with pytest.raises(ValueNotDecodable):
        decodeValue(" " + "[ " * 500 + "]" * 500)


def test_decodingReadsAValueAtTheDepthLimit() -> None:
    assert decodeValue(nestedText(MAX_DEPTH)) == nested(MAX_DEPTH - 1, [])


@pytest.mark.parametrize("text", ["{not json", "", "[1,", '"open', "NaN x", "1 2"])
def test_decodingTextThatIsNotJSONRaisesValueNotDecodable(text: str) -> None:
    with pytest.raises(ValueNotDecodable, match="not JSON"):
        decodeValue(text)


def test_valueNotDecodableIsAValueError() -> None:
    # What the request side and the admin command catch.
    assert issubclass(ValueNotDecodable, ValueError)


def test_aCounterNestedTooDeepCountsAsZero() -> None:
    assert integerOrZero(nestedText(5000)) == 0
    assert integerOrZero("41") == 41


def test_encodeThenDecodeKeepsAnAcceptedValue() -> None:
    value = {"a": [1, 2.5, None, True, {"b": "ü"}]}
    assert decodeValue(encodeValue("k", value)) == value


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 960, 5000])
def test_aRecordNestedTooDeepIsANewSessionNotA500(
    browser: Browser, sessions: Sessions, depth: int
) -> None:
    """
    A record planted in the database (or written by an older version) that
    nests deeper than the limit is corrupt: the request gets a new session,
    and logging out works.
    """
    sid = login(browser)
    db: Any = sessions.database
    db.memory.save(storeKey(sid), SessionChanges(updated={"deep": nestedText(depth)}))
    response, body = browser.get("/all", {COOKIE: sid})
    assert response.code == 200
    assert json.loads(body) == {"isNew": True, "values": {}}
    response, body = browser.get("/destroy", {COOKIE: sid})
    assert response.code == 200
    assert body == b"bye"


@pytest.mark.parametrize(
    "value",
    [{1: "apple"}, {"a": {None: 0}}, [{True: 1}], {2.5: 2}, {(1, 2): 3}],
)
def test_aDictKeyThatIsNoStringIsRefused(value: Any) -> None:
    """
    JSON's objects have string keys: the encoder would turn 1 into "1"
    (and {1: a, "1": b} into one key), so the value read back would not
    be the value set (helper-28).
    """
    from tests.test_session import new

    with pytest.raises(ValueNotSerializable, match="str"):
        new().set("k", value)
