# -*- test-case-name: tests.test_owners -*-
"""
Ending every session of one owner, as the manager's C{destroyOwner} and the
admin command's C{destroy --owner} both do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from .interfaces import IDatabase
from .records import DestroyReason, SessionInfo


class Run(Protocol):
    """
    How each database call is made: with the manager's deadline, latency
    and error mapping (L{txsessions._calls.DatabaseCalls.run}), or as it is.
    """

    def __call__(
        self, method: Callable[..., Deferred[Any]], /, *args: Any
    ) -> Deferred[Any]:
        """
        @param method: a database method, or what returns a L{Deferred}.
        @param args: its arguments.
        @return: a L{Deferred} with its result.
        """


def _asIs(method: Callable[..., Deferred[Any]], /, *args: Any) -> Deferred[Any]:
    return method(*args)


def ownerIndex(database: IDatabase) -> Callable[[str], Deferred[list[SessionInfo]]]:
    """
    @return: the database's C{sessionsOf}.
    @raise NotImplementedError: when it has none, saying so: a database
        written before L{IDatabase} had it keeps no owner index.
    """
    sessionsOf = getattr(database, "sessionsOf", None)
    if sessionsOf is None:
        raise NotImplementedError(
            f"{type(database).__name__} keeps no owner index "
            "(IDatabase.sessionsOf), which listing and destroying a user's "
            "sessions need"
        )
    return cast("Callable[[str], Deferred[list[SessionInfo]]]", sessionsOf)


_AT_ONCE = 64
"""
How many of an owner's sessions L{destroyOwner} destroys at a time.
"""

_PASSES = 4
"""
How many times L{destroyOwner} lists an owner's sessions at the most: again
after a pass in which a session listed was no longer there to destroy (a
request regenerated it meanwhile, under a key the listing did not have).
"""


async def destroyOwner(
    database: IDatabase, owner: str, spared: str | None = None, run: Run = _asIs
) -> int:
    """
    Destroy every session of an owner, with L{DestroyReason.owner}: up to
    L{_AT_ONCE} destroys under way at a time, so that Redis answers them in
    one round trip and SQLite and LMDB commit them in one transaction, not
    one after the other.

    @param database: where the sessions are.
    @param owner: the owner (L{Session.setOwner<txsessions.Session.setOwner>}).
    @param spared: the store key of a session to leave, or C{None}.
    @param run: how each database call is made.
    @return: how many sessions ended.
    @raise NotImplementedError: when the database keeps no owner index.
    @raise Exception: what the first destroy to fail raised, once the others
        under way with it have finished; no more are begun.
    """
    sessionsOf = ownerIndex(database)
    ended = 0
    for _ in range(_PASSES):
        found = await run(sessionsOf, owner)
        keys = [info.key for info in found if info.key != spared]
        missed = False
        for start in range(0, len(keys), _AT_ONCE):
            group = keys[start : start + _AT_ONCE]
            # One call a group: a failure is logged and counted once, and the
            # deadline's cancellation reaches every destroy of the group.
            live = await run(_destroyAll, database, group)
            ended += live
            missed = missed or live < len(group)
        if not missed:
            break
    return ended


def _destroyAll(database: IDatabase, keys: list[str]) -> Deferred[int]:
    """
    Destroy C{keys} all at once.

    @return: how many were live.
    @raise Exception: what the first of them to fail (in C{keys}' order)
        raised, once all have finished.
    """
    destroying = [database.destroy(key, DestroyReason.owner) for key in keys]
    return DeferredList(destroying, consumeErrors=True).addCallback(_liveOf)


def _liveOf(outcomes: list[tuple[bool, Any]]) -> int:
    """
    @return: how many of the destroys whose C{outcomes} these are found
        their session live.
    @raise Exception: what the first to fail raised.
    """
    ended = 0
    for succeeded, result in outcomes:
        if not succeeded:
            cast(Failure, result).raiseException()
        if result:
            ended += 1
    return ended
