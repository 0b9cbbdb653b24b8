from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from txsessions import (
    EntryNotFound,
    EntryTypeError,
    Lifetime,
    Session,
    SessionDestroyedError,
    ValueNotSerializable,
)


class Owner:
    def __init__(self) -> None:
        self.ids = 0
        self.destroyed: list[Session] = []

    def newID(self) -> tuple[str, str]:
        self.ids += 1
        return f"id{self.ids:030d}", f"key{self.ids}"

    def destroy(self, session: Session) -> Deferred[None]:
        self.destroyed.append(session)
        session._markDestroyed()
        return succeed(None)


def loaded(**values: Any) -> Session:
    return Session(Owner(), "x" * 43, "k", dict(values), Lifetime(0, None))  # type: ignore[arg-type]


def new() -> Session:
    return Session(Owner(), None, None, {}, None)  # type: ignore[arg-type]


def test_newSessionDrawsItsIDOnlyWhenAsked() -> None:
    session = new()
    owner: Owner = session._owner  # type: ignore[assignment]
    assert session.isNew
    assert owner.ids == 0
    assert session.id == "id" + "0" * 29 + "1"
    assert session.key == "key1"
    assert owner.ids == 1


def test_loadedSessionIsNotNew() -> None:
    session = loaded(a=1)
    assert not session.isNew
    assert session.id == "x" * 43


def test_getSetDeleteClear() -> None:
    session = loaded(a=1)
    assert session.get("a") == 1
    assert session.get("missing") is None
    assert session.get("missing", 7) == 7
    session.set("b", [1, "two", {"three": 3.0}])
    assert session.getAll() == {"a": 1, "b": [1, "two", {"three": 3.0}]}
    assert "b" in session and len(session) == 2
    assert session.delete("a") is True
    assert session.delete("a") is False
    session.clear()
    assert session.getAll() == {}


def test_getAllIsACopy() -> None:
    session = loaded(a=1)
    session.getAll()["a"] = 2
    assert session.get("a") == 1


@pytest.mark.parametrize(
    "value", [b"bytes", object(), {1, 2}, float("nan"), float("inf"), {"k": b"v"}]
)
def test_setRefusesNonJSONValues(value: object) -> None:
    session = loaded()
    with pytest.raises(ValueNotSerializable, match="'k'"):
        session.set("k", value)
    assert "k" not in session


def test_setRefusesNonStringKeys() -> None:
    with pytest.raises(ValueNotSerializable, match="keys are str"):
        loaded().set(1, "v")  # type: ignore[arg-type]


def test_valueIsStoredAsItWasWhenSet() -> None:
    session = loaded()
    value = [1]
    session.set("k", value)
    value.append(2)
    changes = session._takeChanges(None)
    assert changes is not None
    assert changes.updated == {"k": "[1]"}


def test_unicodeValuesRoundTrip() -> None:
    session = loaded()
    session.set("k", "\u2019 \N{GRINNING FACE} \U0001f600")
    changes = session._takeChanges(None)
    assert changes is not None
    assert changes.updated["k"] == '"\u2019 \N{GRINNING FACE} \U0001f600"'


def test_getString() -> None:
    session = loaded(s="text", i=42, f=1.5, b=True, n=None)
    assert session.getString("s") == "text"
    assert session.getString("i") == "42"
    for key in ("f", "b", "n"):
        with pytest.raises(EntryTypeError, match=f"session key '{key}' holds a"):
            session.getString(key)
    with pytest.raises(EntryNotFound, match="holds no key 'missing'"):
        session.getString("missing")
    assert session.getStringDefault("missing", "d") == "d"
    assert session.getStringDefault("f", "d") == "d"
    assert session.getStringDefault("s", "d") == "text"


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (True, True),
        (False, False),
        ("1", True),
        ("t", True),
        ("TRUE", True),
        ("True", True),
        ("0", False),
        ("f", False),
        ("false", False),
        ("False", False),
    ],
)
def test_getBooleanConversions(stored: object, expected: bool) -> None:
    assert loaded(k=stored).getBoolean("k") is expected


@pytest.mark.parametrize("stored", ["yes", "", 1, 0, None, [True]])
def test_getBooleanRefusesOtherValues(stored: object) -> None:
    session = loaded(k=stored)
    with pytest.raises(EntryTypeError) as caught:
        session.getBoolean("k")
    assert "not a boolean" in str(caught.value)
    assert session.getBooleanDefault("k", True) is True


def test_getBooleanMissing() -> None:
    session = loaded()
    with pytest.raises(EntryNotFound):
        session.getBoolean("k")
    assert session.getBooleanDefault("k", False) is False


def test_entryErrorsArePrintable() -> None:
    with pytest.raises(EntryNotFound) as caught:
        loaded().getString("k")
    assert str(caught.value) == "the session holds no key 'k'"
    assert caught.value.key == "k"
    assert isinstance(caught.value, LookupError)


def test_noChangesMeansNothingToSave() -> None:
    session = loaded(a=1)
    session.get("a")
    session.getAll()
    assert session._takeChanges(None) is None


def test_changesAreBatched() -> None:
    session = loaded(a=1, b=2)
    session.set("c", 3)
    session.delete("a")
    session.set("a", 4)
    session.delete("b")
    changes = session._takeChanges(None)
    assert changes is not None
    assert not changes.create and changes.lifetime is None
    assert changes.updated == {"c": "3", "a": "4"}
    assert changes.deleted == {"b"}
    assert session._takeChanges(None) is None


def test_clearThenSet() -> None:
    session = loaded(a=1)
    session.clear()
    session.set("b", 2)
    changes = session._takeChanges(None)
    assert changes is not None
    assert changes.clear and changes.updated == {"b": "2"} and not changes.deleted


def test_newSessionIsCreatedWithItsLifetime() -> None:
    session = new()
    session.set("a", 1)
    lifetime = Lifetime(5, 15)
    changes = session._takeChanges(lifetime)
    assert changes is not None
    assert changes.create and changes.lifetime == lifetime
    assert session.lifetime == lifetime
    session.set("b", 2)
    later = session._takeChanges(Lifetime(6, 16))
    assert later is not None and not later.create and later.lifetime is None


def test_destroyedSessionRefusesChanges() -> None:
    session = loaded(a=1)
    session.destroy()
    assert session.destroyed
    assert session.getAll() == {}
    for change in (
        lambda: session.set("a", 1),
        lambda: session.delete("a"),
        session.clear,
    ):
        with pytest.raises(SessionDestroyedError, match="destroyed"):
            change()
    assert session._takeChanges(None) is None


def test_reprShowsNoSecrets() -> None:
    session = loaded(password="hunter2")
    assert "x" * 10 not in repr(session) and "hunter2" not in repr(session)
