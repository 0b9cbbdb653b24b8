# -*- test-case-name: tests.test_session -*-
"""
L{ChangeSet}: what a session has changed since it was last saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger

from .errors import SessionDestroyedError, SessionError, ValueNotSerializable
from .values import encodeValue

_log = Logger()

NONE: frozenset[str] = frozenset()
"""
The empty set a session's sets start as, shared: a C{set()} costs five
times a C{{}}, and most requests add nothing to them.  Whoever adds to one
makes it a C{set} first (L{added}); discarding from it and clearing it by
assigning it again need nothing more.
"""


def added(names: set[str] | frozenset[str], name: str) -> set[str]:
    """
    @return: C{names}, made a C{set} of its own if it was L{NONE}, with
        C{name} added.
    """
    if isinstance(names, frozenset):
        names = set(names)
    names.add(name)
    return names


def removed(names: set[str] | frozenset[str], name: str) -> set[str] | frozenset[str]:
    """
    @return: C{names} without C{name}: C{names} itself when it does not
        hold it (L{NONE} never does), else a copy.
    """
    return names - {name} if name in names else names


class ChangeSet:
    """
    What a L{Session} has changed since it was last saved, and where it
    stands with its database and its cookie: the one piece of state the
    request session reads and the session writes.

    @ivar updated: stored field names and their new JSON text.
    @ivar deleted: stored field names to remove.
    @ivar cleared: whether every value is to be removed first.
    @ivar lifetimeChanged: whether the lifetime is to be saved.
    @ivar containers: the keys set to a list or a dict since the last save:
        encoded again when saved (L{encodeAgain}).
    @ivar readFlashes: flash messages read, to be removed.
    @ivar removedFlashes: flash messages read whose removal a save has
        already taken: a L{Session.clear <txsessions.Session.clear>}, which
        writes back the flash messages it keeps, leaves them out.
    @ivar cookieDirty: whether the cookie is to be (re)sent.
    @ivar stored: whether the database holds the session.
    @ivar destroyed: whether the session takes no more changes: it was
        destroyed, or (with C{finished}) its response has finished.
    @ivar finished: whether the session's response has finished, its last
        changes saved (L{finish}).
    @ivar ownWrites: what the session wrote itself on loading (its owner's
        last-seen time, its idle lifetime pushed back): the fields then
        updated and the lifetime then given, or C{None} when it wrote
        nothing.  See L{onlyOwn}.
    """

    __slots__ = (
        "updated",
        "deleted",
        "cleared",
        "lifetimeChanged",
        "containers",
        "readFlashes",
        "removedFlashes",
        "cookieDirty",
        "stored",
        "destroyed",
        "finished",
        "ownWrites",
    )

    def __init__(self, stored: bool) -> None:
        """
        @param stored: whether the database holds the session.
        """
        self.updated: dict[str, str] = {}
        self.deleted: set[str] | frozenset[str] = NONE
        self.cleared = False
        self.lifetimeChanged = False
        self.containers: set[str] | frozenset[str] = NONE
        self.readFlashes: set[str] | frozenset[str] = NONE
        self.removedFlashes: set[str] | frozenset[str] = NONE
        self.cookieDirty = False
        self.stored = stored
        self.destroyed = False
        self.finished = False
        self.ownWrites: tuple[dict[str, str], Any] | None = None

    def pending(self) -> bool:
        """
        @return: whether there is anything to save.
        """
        return not self.destroyed and bool(
            self.updated
            or self.deleted
            or self.cleared
            or self.lifetimeChanged
            or self.readFlashes
        )

    def change(self, name: str, text: str | None) -> None:
        """
        Record a stored field's new text, or its removal (C{None}).
        """
        if text is None:
            self.updated.pop(name, None)
            self.deleted = added(self.deleted, name)
        else:
            self.updated[name] = text
            self.deleted = removed(self.deleted, name)

    def encodeAgain(self, values: Mapping[str, Any]) -> None:
        """
        Encode the lists and dicts set since the last save again, as they
        are now, into what is to be saved: what was changed in them in place
        after they were set is saved too, as Django, Flask and
        aiohttp-session save it (C{session.setdefault("cart", []).append(x)}).
        One that can no longer be stored is saved as it was set.

        @param values: the session's values.
        """
        updated = self.updated
        for key in self.containers:
            value = values.get(key)
            if key in updated and (type(value) is list or type(value) is dict):
                try:
                    updated[key] = encodeValue(key, value)
                except ValueNotSerializable as e:
                    _log.warn(
                        "a session value changed in place after it was set can "
                        "no longer be stored ({error}); saved as it was set",
                        error=e,
                    )
        self.containers = NONE

    def keepOwn(self, lifetime: Any) -> None:
        """
        Remember what the session has written itself on loading (its
        owner's last-seen time, its idle lifetime pushed back), if anything:
        see L{onlyOwn}.

        @param lifetime: the session's lifetime now.
        """
        if self.pending():
            self.ownWrites = (
                dict(self.updated),
                lifetime if self.lifetimeChanged else None,
            )

    def written(self) -> dict[str, str]:
        """
        @return: the fields updated since the last save, less those that
            still hold what the session wrote itself on loading (L{keepOwn}).
        """
        own = self.ownWrites
        if own is None:
            return dict(self.updated)
        return {k: v for k, v in self.updated.items() if own[0].get(k) != v}

    def onlyOwn(self, session: Any, increments: object = None) -> bool:
        """
        @param session: the session (a L{txsessions.Session}).
        @param increments: increments to save with the changes.
        @return: whether all there is to save is what the session wrote
            itself on loading (L{keepOwn}): nothing the application would
            miss if the session ended meanwhile.
        """
        own = self.ownWrites
        return (
            own is not None
            and not increments
            and not (self.deleted or self.cleared or self.readFlashes)
            and self.updated == own[0]
            and (not self.lifetimeChanged or session.lifetime is own[1])
        )

    def forget(self) -> None:
        """
        Forget every change: the session is destroyed.
        """
        self.destroyed = True
        self.finished = False
        self.updated.clear()
        self.deleted = self.readFlashes = NONE
        self.cleared = self.lifetimeChanged = self.cookieDirty = False

    def finish(self) -> None:
        """
        The session's response has finished, its last changes taken to be
        saved: a change from now on would never be, and is refused.  A
        destroyed session stays destroyed.
        """
        if not self.destroyed:
            # What the last commit did not take (a 5xx saves nothing) never
            # is, not even with a later increment.
            self.forget()
            self.finished = True

    def checkAlive(self) -> None:
        """
        @raise SessionDestroyedError: when the session was destroyed.
        @raise SessionError: when its response has finished (L{finish}).
        """
        if self.finished:
            raise SessionError(
                "this session's response has finished: a change now would "
                "never be saved"
            )
        if self.destroyed:
            raise SessionDestroyedError(
                "this session was destroyed; start a new one with Sessions.start"
            )
