# -*- test-case-name: tests.test_tap -*-
"""
The session databases, and L{openDatabase}, which opens one from a URL.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from ..interfaces import IDatabase

SCHEMES = ("memory",)
"""
The URL schemes L{openDatabase} knows.
"""


def checkDatabaseURL(url: str) -> str:
    """
    Refuse a URL that names no database txsessions has.

    @param url: a database URL.
    @return: its scheme, lowercased.
    @raise ValueError: when the scheme is unknown.
    """
    scheme = url.partition(":")[0].lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}:" for s in SCHEMES)
        raise ValueError(f"unknown database URL {url!r}: use one of {known}")
    return scheme


def openDatabase(url: str, clock: IReactorTime | None = None) -> IDatabase:
    """
    Open the database a URL names.

    @param url: C{memory:} (the default database, in this process).
    @param clock: the time source for expirations; the global reactor when
        C{None}.
    @return: the database.
    @raise ValueError: when the URL names no database txsessions has.
    """
    checkDatabaseURL(url)
    from .memory import MemoryDatabase

    return MemoryDatabase(clock)
