"""
The typed getters and their conversions (Iris §3).
"""

from __future__ import annotations

import pytest

from tests.test_session import loaded
from txsessions import EntryNotFound, EntryTypeError

GETTERS = ["getString", "getInt", "getInt64", "getFloat32", "getFloat64", "getBoolean"]


@pytest.mark.parametrize("getter", GETTERS)
def test_missingKeyRaisesAPrintableError(getter: str) -> None:
    with pytest.raises(EntryNotFound) as caught:
        getattr(loaded(), getter)("k")
    assert str(caught.value) == "the session holds no key 'k'"
    assert caught.value.key == "k"
    assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize(
    ("getter", "default"),
    [
        ("getString", "d"),
        ("getInt", 7),
        ("getInt64", 7),
        ("getFloat32", 0.5),
        ("getFloat64", 0.5),
        ("getBoolean", True),
    ],
)
def test_defaultFormsReturnTheDefaultOnAnyError(getter: str, default: object) -> None:
    session = loaded(bad=[1, 2])
    assert getattr(session, getter + "Default")("missing", default) == default
    assert getattr(session, getter + "Default")("bad", default) == default


def test_getString() -> None:
    session = loaded(s="text", i=42, f=1.5, b=True, n=None, e="")
    assert session.getString("s") == "text"
    assert session.getString("i") == "42"
    for key in ("f", "b", "n"):
        with pytest.raises(EntryTypeError, match=f"session key '{key}' holds a"):
            session.getString(key)
    assert session.getStringDefault("f", "d") == "d"
    assert session.getStringDefault("s", "d") == "text"


def test_getStringDefaultKeepsAStoredEmptyString() -> None:
    # Iris returns the default for "".
    assert loaded(e="").getStringDefault("e", "d") == ""


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (5, 5),
        (-3, -3),
        (2.9, 2),
        (-2.9, -2),
        ("17", 17),
        (" 8 ", 8),
        ("-4", -4),
        (10**20, 10**20),
    ],
)
def test_getIntConversions(stored: object, expected: int) -> None:
    session = loaded(k=stored)
    assert session.getInt("k") == expected
    assert session.getInt64("k") == expected


@pytest.mark.parametrize("stored", ["1.5", "abc", "", True, None, [1], {"a": 1}])
def test_getIntRefuses(stored: object) -> None:
    with pytest.raises(EntryTypeError, match="not an integer"):
        loaded(k=stored).getInt("k")


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(1.5, 1.5), (3, 3.0), ("0.1", 0.1), ("1e3", 1000.0), ("-2", -2.0)],
)
def test_getFloatConversions(stored: object, expected: float) -> None:
    session = loaded(k=stored)
    assert session.getFloat64("k") == expected
    assert session.getFloat32("k") == expected


def test_getFloat64ParsesStringsAt64Bits() -> None:
    # Iris parses at 32 bits: "0.1" becomes 0.10000000149011612.
    assert loaded(k="0.1").getFloat64("k") == 0.1


@pytest.mark.parametrize("stored", ["abc", "", True, None, [1.0]])
def test_getFloatRefuses(stored: object) -> None:
    with pytest.raises(EntryTypeError, match="not a number"):
        loaded(k=stored).getFloat64("k")


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (True, True),
        (False, False),
        ("1", True),
        ("t", True),
        ("T", True),
        ("TRUE", True),
        ("true", True),
        ("True", True),
        ("0", False),
        ("f", False),
        ("F", False),
        ("FALSE", False),
        ("false", False),
        ("False", False),
    ],
)
def test_getBooleanConversions(stored: object, expected: bool) -> None:
    assert loaded(k=stored).getBoolean("k") is expected


@pytest.mark.parametrize("stored", ["yes", "", 1, 0, None, [True]])
def test_getBooleanRefuses(stored: object) -> None:
    session = loaded(k=stored)
    with pytest.raises(EntryTypeError, match="not a boolean"):
        session.getBoolean("k")


def test_errorMessagesHoldNoValue() -> None:
    with pytest.raises(EntryTypeError) as caught:
        loaded(k="secret-token").getInt("k")
    assert "secret-token" not in str(caught.value)


def test_getFloatOfAnIntegerTooLargeForAFloat() -> None:
    # helper-28: OverflowError, which getFloat64Default did not catch.
    session = loaded(k=10**400)
    with pytest.raises(EntryTypeError, match="not a number"):
        session.getFloat64("k")
    assert session.getFloat64Default("k", 1.5) == 1.5
