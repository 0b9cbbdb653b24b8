# -*- test-case-name: tests.test_owners -*-
"""
Ending every session of one owner, as the manager's C{destroyOwner} and the
admin command's C{destroy --owner} both do.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from twisted.internet.defer import Deferred

from .interfaces import IDatabase
from .records import DestroyReason

T = TypeVar("T")


class Call(Protocol):
    """
    What each database call goes through: the manager's deadline, latency
    and error mapping (L{txsessions._calls.DatabaseCalls.call}), or nothing.
    """

    def __call__(self, d: Deferred[T], /) -> Deferred[T]:
        """
        @param d: what the database returned.
        @return: a L{Deferred} with its result.
        """


def _asIs(d: Deferred[T]) -> Deferred[T]:
    return d


async def destroyOwner(
    database: IDatabase, owner: str, spared: str | None = None, call: Call = _asIs
) -> int:
    """
    Destroy every session of an owner, with L{DestroyReason.owner}, one
    after the other.

    @param database: where the sessions are.
    @param owner: the owner (L{Session.setOwner<txsessions.Session.setOwner>}).
    @param spared: the store key of a session to leave, or C{None}.
    @param call: what each database call goes through.
    @return: how many sessions ended.
    """
    ended = 0
    for info in await call(database.sessionsOf(owner)):
        if info.key != spared:
            ended += await call(database.destroy(info.key, DestroyReason.owner))
    return ended
