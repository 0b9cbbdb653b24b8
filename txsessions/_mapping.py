# -*- test-case-name: tests.test_mapping -*-
"""
The mapping protocol of L{txsessions.Session}, as Flask, Django and
aiohttp-session users expect, on its Iris-named methods.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from typing import Any

from .errors import EntryNotFound

_missing: Any = object()


class MappingMethods:
    """
    C{session[key]}, assignment, C{del}, iteration, C{keys()}, C{values()},
    C{items()}, C{pop}, C{popitem}, C{setdefault} and C{update}: each is one
    of the Iris-named methods (L{get}, L{set}, L{delete}, L{getAll}), with
    their change tracking, immutables and errors.  Iris's C{get(key)} and
    C{Mapping.get(key, default)} are the one C{get}: C{default} is C{None}
    unless given.  Flash messages are not in the mapping.  Sessions compare
    by identity, not as mappings.
    """

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        raise NotImplementedError  # pragma: no cover - Session's

    def set(self, key: str, value: Any) -> None:
        raise NotImplementedError  # pragma: no cover - Session's

    def delete(self, key: str) -> bool:
        raise NotImplementedError  # pragma: no cover - Session's

    def getAll(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - Session's

    def __contains__(self, key: object) -> bool:
        raise NotImplementedError  # pragma: no cover - Session's

    def __getitem__(self, key: str) -> Any:
        """
        C{session[key]}: L{get}, but a missing key raises.

        @raise EntryNotFound: (a C{KeyError}) when the session has no such
            key.
        """
        if key not in self:
            raise EntryNotFound(key, f"the session holds no key {key!r}")
        return self.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        """
        C{session[key] = value}: L{set}.
        """
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        """
        C{del session[key]}: L{delete}, but a missing key raises.

        @raise EntryNotFound: (a C{KeyError}) when the session has no such
            key.
        """
        if not self.delete(key):
            raise EntryNotFound(key, f"the session holds no key {key!r}")

    def __iter__(self) -> Iterator[str]:
        """
        @return: an iterator over the keys as they were when it was made, in
            the order they were first set (on Redis, see
            L{Session.visit<txsessions.Session.visit>}).
        """
        return iter(self.getAll())

    def keys(self) -> KeysView[str]:
        """
        @return: the keys, as they are now (a view of a copy).
        """
        return self.getAll().keys()

    def values(self) -> ValuesView[Any]:
        """
        @return: the values, as they are now (a view of a copy).
        """
        return self.getAll().values()

    def items(self) -> ItemsView[str, Any]:
        """
        @return: the C{(key, value)} pairs, as they are now (a view of a
            copy).
        """
        return self.getAll().items()

    def pop(self, key: str, default: Any = _missing) -> Any:
        """
        Remove a key and return its value (L{get}, then L{delete}).

        @param default: returned when the session has no such key.
        @raise EntryNotFound: (a C{KeyError}) when it has none and no
            C{default} is given.
        """
        if key not in self:
            if default is _missing:
                raise EntryNotFound(key, f"the session holds no key {key!r}")
            return default
        value = self.get(key)
        self.delete(key)
        return value

    def popitem(self) -> tuple[str, Any]:
        """
        Remove the key set last (on Redis, see
        L{Session.visit<txsessions.Session.visit>}) and return it with its
        value.

        @raise KeyError: when the session holds no value.
        """
        keys = list(self.getAll())
        if not keys:
            raise KeyError("popitem(): the session holds no value")
        return keys[-1], self.pop(keys[-1])

    def setdefault(self, key: str, default: Any = None) -> Any:
        """
        L{set} C{key} to C{default} unless the session holds it.

        @return: the value under C{key}.
        """
        if key not in self:
            self.set(key, default)
        return self.get(key)

    def update(self, other: Any = (), /, **values: Any) -> None:
        """
        L{set} every pair of a mapping, or an iterable of pairs, and of the
        keyword arguments, in order.
        """
        for key, value in dict(other, **values).items():
            self.set(key, value)
