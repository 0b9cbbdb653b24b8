"""
The request path's database calls (txsessions._calls).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from txsessions._calls import isDeferred


class _Subclass(Deferred[Any]):
    pass


def test_isDeferredIsIsinstance() -> None:
    values: list[object] = [Deferred(), succeed(1), _Subclass(), None, {}, 1, Deferred]
    for value in values:
        assert isDeferred(value) is isinstance(value, Deferred)
