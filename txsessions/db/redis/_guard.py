"""
Connections that check they reached Redis: a server that answers something
other than Redis's protocol (an HTTP server, a proxy, a wrong port) is
reported once, through the database's outage path, and its connection
dropped, rather than txredisapi's C{InvalidData} escaping C{dataReceived}
(which Twisted logs as an unhandled error, on every retry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def speakingRedis(base: type, notRedis: Callable[[Any], None]) -> type:
    """
    A subclass of a txredisapi protocol class that drops its connection at
    the first reply that is not Redis's protocol.

    @param base: the txredisapi protocol class.
    @param notRedis: told each time, with the protocol, just before its
        connection is dropped.
    @return: the subclass.
    """
    import txredisapi

    class SpeakingRedis(base):
        _notRedis = False

        def dataReceived(self, data: bytes, unpause: bool = False) -> None:
            if self._notRedis:
                return
            try:
                super().dataReceived(data, unpause)
            except txredisapi.InvalidData:
                self._notRedis = True
                notRedis(self)
                transport: Any = self.transport
                transport.abortConnection()

    return SpeakingRedis
