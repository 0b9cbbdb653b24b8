"""
Session as a mapping: each operation is an Iris-named method, with the same
change tracking, immutables and errors.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import pytest

from tests.test_session import loaded
from txsessions import (
    EntryNotFound,
    ImmutableValueError,
    Session,
    SessionDestroyedError,
    ValueNotSerializable,
)
from txsessions.session import takeChanges


def test_aSessionIsAMutableMapping() -> None:
    assert issubclass(Session, MutableMapping)
    assert isinstance(loaded(), Mapping)


def test_itemAccessAssignmentAndDeletion() -> None:
    session = loaded(a=1)
    assert session["a"] == 1
    session["b"] = [1, "two"]
    assert session.getAll() == {"a": 1, "b": [1, "two"]}
    del session["a"]
    assert "a" not in session and len(session) == 1


def test_aMissingKeyIsAKeyError() -> None:
    session = loaded()
    with pytest.raises(KeyError) as raised:
        session["missing"]
    assert isinstance(raised.value, EntryNotFound)
    assert str(raised.value) == "the session holds no key 'missing'"
    with pytest.raises(EntryNotFound):
        del session["missing"]
    with pytest.raises(KeyError):
        session.pop("missing")


def test_theTypedGettersRaiseAKeyErrorToo() -> None:
    with pytest.raises(KeyError):
        loaded().getInt("missing")


def test_getIsIrisGetAndMappingGet() -> None:
    session = loaded(a=1)
    assert session.get("a") == 1
    assert session.get("missing") is None
    assert session.get("missing", 7) == 7


def test_iterationKeysValuesItemsInTheOrderSet() -> None:
    session = loaded(a=1)
    session["c"] = 3
    session["b"] = 2
    assert list(session) == ["a", "c", "b"]
    assert list(session.keys()) == ["a", "c", "b"]
    assert list(session.values()) == [1, 3, 2]
    assert list(session.items()) == [("a", 1), ("c", 3), ("b", 2)]
    assert dict(session) == session.getAll()


def test_changingTheSessionWhileIteratingIsAllowed() -> None:
    session = loaded(a=1, b=2)
    for key in session:
        del session[key]
    assert len(session) == 0


def test_assignmentAndDeletionAreTrackedAsSetAndDelete() -> None:
    session = loaded(a=1)
    session["b"] = {"x": 1}
    del session["a"]
    changes = takeChanges(session)
    assert changes.updated == {"b": '{"x":1}'}
    assert changes.deleted == {"a"}
    assert not session.changes.pending()


def test_readingIsNoChange() -> None:
    session = loaded(a=1)
    session["a"]
    list(session.items())
    assert "a" in session
    assert not session.changes.pending()


def test_assignmentCannotReplaceAnImmutable() -> None:
    session = loaded()
    session.setImmutable("roles", ["user"])
    with pytest.raises(ImmutableValueError):
        session["roles"] = ["admin"]
    with pytest.raises(ImmutableValueError):
        session.update(roles=["admin"])
    session["roles"].append("admin")
    assert session["roles"] == ["user"]
    del session["roles"]
    session["roles"] = ["admin"]
    assert session.get("roles") == ["admin"]


def test_assignmentRefusesWhatSetRefuses() -> None:
    session = loaded()
    with pytest.raises(ValueNotSerializable):
        session["k"] = b"bytes"
    session.destroy()
    with pytest.raises(SessionDestroyedError):
        session["k"] = 1
    with pytest.raises(SessionDestroyedError):
        del session["k"]


def test_popPopitemSetdefaultUpdate() -> None:
    session = loaded(a=1)
    assert session.setdefault("a", 9) == 1
    assert session.setdefault("b", 2) == 2
    session.update({"c": 3}, d=4)
    session.update([("e", 5)])
    assert session.pop("a") == 1
    assert session.pop("a", None) is None
    assert session.popitem() == ("e", 5)
    assert session.getAll() == {"b": 2, "c": 3, "d": 4}
    session.clear()
    with pytest.raises(KeyError):
        session.popitem()


def test_updateTakesAnyKeywordAsDictDoes() -> None:
    """
    C{update(self=1)} sets C{"self"}, as C{dict.update} does (helper-43: a
    C{TypeError}); C{other} is a key too.
    """
    session = loaded()
    session.update(self=1, other=2)
    assert session.getAll() == {"self": 1, "other": 2}


def test_flashesAreNotInTheMapping() -> None:
    session = loaded(a=1)
    session.setFlash("notice", "hello")
    assert list(session) == ["a"] and len(session) == 1
    assert "notice" not in session
    del session["a"]
    session.clear()
    assert session.getFlash("notice") == "hello"
