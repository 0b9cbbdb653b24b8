# -*- test-case-name: tests.test_flashes -*-
"""
Flash messages (Iris's C{SetFlash}, C{GetFlash}, ...), for
L{txsessions.Session}: values read once, removed at the end of the request
that read them.
"""

from __future__ import annotations

from typing import Any

from ._changes import NONE, ChangeSet, added, removed
from ._fields import FLASH
from .values import encodeValue

_missing: Any = object()


class FlashMethods:
    """
    The flash messages of a session, held in C{_flashes}; what changes is
    recorded in its C{changes}.
    """

    __slots__ = ()

    _flashes: dict[str, Any]
    changes: ChangeSet

    def setFlash(self, key: str, value: Any) -> None:
        """
        Store a flash message: readable until it is read with L{getFlash}
        (or L{getFlashes}, L{getFlashString}), and removed at the end of the
        request that read it.

        @raise ValueNotSerializable: when C{key} or C{value} is not storable.
        """
        self.changes.checkAlive()
        text = encodeValue(key, value)  # checks the key, too
        self.changes.change(FLASH + key, text)
        self._flashes[key] = value
        self.changes.readFlashes = removed(self.changes.readFlashes, key)
        self.changes.removedFlashes = removed(self.changes.removedFlashes, key)

    def hasFlash(self) -> bool:
        """
        @return: whether the session holds any flash message, read ones
            included until the request ends.
        """
        return bool(self._flashes)

    def peekFlash(self, key: str) -> Any:
        """
        @return: the flash message under C{key}, or C{None}, without marking
            it read.
        """
        return self._flashes.get(key)

    def getFlash(self, key: str) -> Any:
        """
        @return: the flash message under C{key}, or C{None}; it is marked
            read, and removed when the request ends.
        """
        if key in self._flashes:
            self.changes.readFlashes = added(self.changes.readFlashes, key)
        return self._flashes.get(key)

    def getFlashes(self) -> dict[str, Any]:
        """
        @return: every flash message, all marked read.
        """
        if self._flashes:
            self.changes.readFlashes = {*self.changes.readFlashes, *self._flashes}
        return dict(self._flashes)

    def getFlashString(self, key: str) -> str:
        """
        @return: the flash message under C{key} if it is a string, else
            C{""}; it is marked read either way.
        """
        return self.getFlashStringDefault(key, "")

    def getFlashStringDefault(self, key: str, default: str) -> str:
        """
        @return: the flash message under C{key} if it is a string, else
            C{default}; it is marked read either way.
        """
        value = self.getFlash(key)
        return value if isinstance(value, str) else default

    def deleteFlash(self, key: str) -> None:
        """
        Remove a flash message now.
        """
        self.changes.checkAlive()
        if self._flashes.pop(key, _missing) is not _missing:
            self.changes.change(FLASH + key, None)
        self.changes.readFlashes = removed(self.changes.readFlashes, key)

    def clearFlashes(self) -> None:
        """
        Remove every flash message now.
        """
        for key in list(self._flashes):
            self.deleteFlash(key)

    def _removeReadFlashes(self) -> None:
        """
        Remove the flash messages read, in what is to be saved.
        """
        changes = self.changes
        for key in changes.readFlashes:
            changes.change(FLASH + key, None)
        changes.removedFlashes = {*changes.removedFlashes, *changes.readFlashes}
        changes.readFlashes = NONE

    def _keepFlashes(self) -> None:
        """
        Write back, in what is to be saved after a clear, the flash messages
        the session holds and has not read: the clear keeps them.
        """
        changes = self.changes
        deleted, gone = changes.deleted, changes.removedFlashes
        changes.updated.update(
            (FLASH + k, encodeValue(k, v))
            for k, v in self._flashes.items()
            if FLASH + k not in deleted and k not in gone
        )
