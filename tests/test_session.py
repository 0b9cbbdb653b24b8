from __future__ import annotations

import dataclasses
import json
from typing import Any

import attrs
import pytest
from twisted.internet.defer import Deferred, succeed

from txsessions import (
    EntryNotFound,
    EntryTypeError,
    Session,
    SessionDestroyedError,
    ValueNotSerializable,
)
from txsessions.interfaces import Lifetime
from txsessions.session import markDestroyed, restart, takeChanges


class Owner:
    """
    Stands in for the request a session belongs to.
    """

    def __init__(self) -> None:
        self.ids = 0
        self.destroyed: list[Session] = []
        self.clock = 0.0

    def newID(self) -> tuple[str, str]:
        self.ids += 1
        return f"id{self.ids:030d}", f"key{self.ids}"

    def now(self) -> float:
        return self.clock

    def userAgent(self) -> str:
        return "test"

    def destroy(self, session: Session) -> Deferred[None]:
        self.destroyed.append(session)
        markDestroyed(session)
        return succeed(None)


def loaded(**values: Any) -> Session:
    fields = {k: json.dumps(v) for k, v in values.items()}
    return Session(Owner(), "x" * 43, "k", Lifetime(0, None), fields)  # type: ignore[arg-type]


def new() -> Session:
    return Session(Owner(), None, None, Lifetime(0, None))  # type: ignore[arg-type]


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
    "value",
    [
        b"bytes",
        object(),
        {1, 2},
        float("nan"),
        float("inf"),
        {"k": b"v"},
        "\ud800",  # a lone surrogate: no database could store it as UTF-8
        ["ok", "\udfff"],
        pytest.param(10**5000, id="more digits than repr() writes"),
    ],
)
def test_setRefusesNonJSONValues(value: object) -> None:
    session = loaded()
    with pytest.raises(ValueNotSerializable, match="'k'"):
        session.set("k", value)
    assert "k" not in session


def test_setRefusesAKeyNoDatabaseCouldStore() -> None:
    with pytest.raises(ValueNotSerializable):
        loaded().set("\ud800", "v")


def test_setRefusesNonStringKeys() -> None:
    with pytest.raises(ValueNotSerializable, match="keys are str"):
        loaded().set(1, "v")  # type: ignore[arg-type]


def test_aListOrDictSetIsSavedAsItIsAtTheSave() -> None:
    """
    A list or dict set in this request, then changed in place, is saved as
    it is when saved, as Django and Flask save it (helper-50: the change was
    lost for good, though the request itself read it); a scalar is saved as
    set; a value loaded and changed in place without being set again is
    not saved.
    """
    session = loaded(loaded=[0])
    value = [1]
    session.set("k", value)
    value.append(2)
    session.setdefault("cart", []).append("apple")
    session.setdefault("prefs", {})["theme"] = "dark"
    session.get("loaded").append(1)
    assert takeChanges(session).updated == {
        "k": "[1,2]",
        "cart": '["apple"]',
        "prefs": '{"theme":"dark"}',
    }
    value.append(3)  # after its save: set it again to save it
    assert takeChanges(session).updated == {}


def test_aListSetBeforeARestartIsSavedAsItIsAtTheSave() -> None:
    """
    A regenerate that finds another request first restarts the session with
    what this request wrote: a list set before it and changed after it is
    saved as it is then (helper-55: as it was when set).
    """
    session = loaded(user="bob")
    cart = session.setdefault("cart", [])
    restart(session, Lifetime(0, None))
    cart.append("apple")
    assert takeChanges(session).updated["cart"] == '["apple"]'


def test_aListChangedIntoWhatCannotBeStoredIsSavedAsSet() -> None:
    session = loaded()
    value: list[object] = [1]
    session.set("k", value)
    value.append(object())
    assert takeChanges(session).updated == {"k": "[1]"}


def test_unicodeValuesRoundTrip() -> None:
    session = loaded()
    session.set("k", "\u2019 \N{GRINNING FACE} \U0001f600")
    assert takeChanges(session).updated["k"] == '"\u2019 \N{GRINNING FACE} \U0001f600"'


def test_readingIsNoChange() -> None:
    session = loaded(a=1)
    session.get("a")
    session.getAll()
    session.visit(lambda k, v: None)
    assert not session.changes.pending()


def test_changesAreBatched() -> None:
    session = loaded(a=1, b=2)
    session.set("c", 3)
    session.delete("a")
    session.set("a", 4)
    session.delete("b")
    changes = takeChanges(session)
    assert not changes.create and changes.lifetime is None
    assert changes.updated == {"c": "3", "a": "4"}
    assert changes.deleted == {"b"}
    assert not session.changes.pending()


def test_clearThenSet() -> None:
    session = loaded(a=1)
    session.clear()
    session.set("b", 2)
    changes = takeChanges(session)
    assert changes.clear and changes.updated == {"b": "2"} and not changes.deleted


def test_newSessionIsCreatedWithItsLifetime() -> None:
    session = Session(Owner(), None, None, Lifetime(5, 15))  # type: ignore[arg-type]
    session.set("a", 1)
    changes = takeChanges(session)
    assert changes.create and changes.lifetime == Lifetime(5, 15)
    assert not changes.clear and not changes.deleted
    session.set("b", 2)
    later = takeChanges(session)
    assert not later.create and later.lifetime is None


def test_newSessionClearedIsCreatedEmpty() -> None:
    session = new()
    session.set("a", 1)
    session.clear()
    changes = takeChanges(session)
    assert changes.create and not changes.clear and changes.updated == {}


def test_incrementsTravelWithTheChanges() -> None:
    session = loaded(n=1)
    session.set("a", 1)
    changes = takeChanges(session, {"n": 2})
    assert changes.increments == {"n": 2} and changes.updated == {"a": "1"}


def test_destroyedSessionRefusesChanges() -> None:
    session = loaded(a=1)
    session.destroy()
    assert session.destroyed
    assert session.getAll() == {}
    changes = (
        lambda: session.set("a", 1),
        lambda: session.delete("a"),
        session.clear,
        lambda: session.setImmutable("a", 1),
        lambda: session.increment("a"),
        lambda: session.setFlash("a", 1),
    )
    for change in changes:
        with pytest.raises(SessionDestroyedError, match="destroyed"):
            change()
    assert not session.changes.pending()


def test_keysStartingWithNULAreReserved() -> None:
    with pytest.raises(ValueNotSerializable, match="NUL"):
        loaded().set("\x00f", 1)


def test_internalFieldsAreNotValues() -> None:
    fields = {"a": "1", "\x00fnote": '"hi"', "\x00ia": "true", "\x00zfuture": "1"}
    session = Session(Owner(), "x" * 43, "k", Lifetime(0, None), fields)  # type: ignore[arg-type]
    assert session.getAll() == {"a": 1}
    assert session.len() == 1
    assert session.peekFlash("note") == "hi"


def test_corruptFieldsRaiseValueError() -> None:
    with pytest.raises(ValueError):
        Session(Owner(), "x" * 43, "k", Lifetime(0, None), {"a": "{nope"})  # type: ignore[arg-type]


def test_visitInInsertionOrder() -> None:
    session = loaded(b=1, a=2)
    session.set("c", 3)
    seen: list[tuple[str, Any]] = []
    session.visit(lambda k, v: seen.append((k, v)))
    assert seen == [("b", 1), ("a", 2), ("c", 3)]


@attrs.frozen
class User:
    name: str
    roles: list[str] = attrs.Factory(list)


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_decodeIntoAttrsAndDataclasses() -> None:
    session = loaded(user={"name": "ann", "roles": ["admin"]}, point={"x": 1, "y": 2})
    assert session.decode("user", User) == User("ann", ["admin"])
    assert session.decode("point", Point) == Point(1, 2)


def test_decodeErrors() -> None:
    session = loaded(user={"nom": "ann"}, text="ann")
    with pytest.raises(EntryTypeError, match="does not fit User"):
        session.decode("user", User)
    with pytest.raises(EntryTypeError, match="no object"):
        session.decode("text", User)
    with pytest.raises(EntryNotFound):
        session.decode("missing", User)
    with pytest.raises(TypeError, match="neither an attrs class nor a dataclass"):
        session.decode("user", dict)


@attrs.frozen
class Theme:
    name: str = attrs.field(validator=attrs.validators.in_(["light", "dark"]))


def test_aValueTheClassRefusesIsAnEntryTypeError() -> None:
    """
    A stored object whose fields the class's own validation refuses (a value
    an older release wrote) does not fit it either: the documented
    L{EntryTypeError}, not the C{ValueError} the validator raised.
    """
    session = loaded(theme={"name": "blue"})
    with pytest.raises(EntryTypeError, match="does not fit Theme"):
        session.decode("theme", Theme)


def test_lifetime() -> None:
    session = Session(Owner(), None, None, Lifetime(0, 30))  # type: ignore[arg-type]
    owner: Owner = session._owner  # type: ignore[assignment]
    assert session.expiresAt == 30
    owner.clock = 12
    assert session.remaining() == 18
    owner.clock = 40
    assert session.remaining() == 0
    assert new().remaining() is None and new().expiresAt is None


def test_reprShowsNoSecrets() -> None:
    session = loaded(password="hunter2")
    assert "x" * 10 not in repr(session) and "hunter2" not in repr(session)


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 2**70])
def test_anIncrementIsA64BitInteger(n: int) -> None:
    """
    An increment outside the 64-bit integers is refused at the call, on
    every database alike; before, memory, SQLite and LMDB counted it and
    Redis answered a 503.
    """
    session = loaded()
    with pytest.raises(ValueError, match="64-bit"):
        session.increment("n", n)
