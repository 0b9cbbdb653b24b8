# -*- test-case-name: tests.test_tap -*-
"""
The session databases, and L{openDatabase}, which opens one from a URL.
"""

from __future__ import annotations

import importlib.util
import re

from twisted.internet.interfaces import IReactorTime

from ..interfaces import IDatabase

# A password= parameter ends at the next "&" (a "#" in it included); the
# password of user:password@ at the last "@" before a "/", whatever it holds
# ("?" and "#" too, which urlsplit would misread: masked all the same).
_queryPassword = re.compile(r"([?&]password=)[^&]*")
_userPassword = re.compile(r"(//[^/?#:]*:)[^/]*@")

SCHEMES = ("memory", "sqlite", "lmdb", "redis", "rediss", "unix", "redis+sentinel")
"""
The URL schemes L{openDatabase} knows.
"""

EXTRAS = {
    "lmdb": ("lmdb", ("lmdb",)),
    "redis": ("redis", ("txredisapi", "hiredis")),
    "rediss": ("redis", ("txredisapi", "hiredis", "OpenSSL", "service_identity")),
    "unix": ("redis", ("txredisapi", "hiredis")),
    "redis+sentinel": ("redis", ("txredisapi", "hiredis")),
    "prometheus": ("prometheus", ("prometheus_client",)),
}
"""
For the schemes whose database needs more than the core install (and for
C{prometheus}, the metrics format): the extra to install, and the modules it
brings.
"""


def requireExtra(scheme: str) -> None:
    """
    Refuse a database whose extra is not installed, naming the extra.

    @param scheme: a database URL's scheme, lowercased.
    @raise ValueError: when a module the database needs cannot be imported.
    """
    if scheme not in EXTRAS:
        return
    extra, modules = EXTRAS[scheme]
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            what = {"prometheus": "Prometheus metrics", "lmdb": "lmdb: databases"}.get(
                scheme, f"{scheme}:// databases"
            )
            raise ValueError(
                f"{what} need the {extra} extra "
                f"(no module {module}): pip install 'txsessions[{extra}]'"
            )


def missingExtra(scheme: str, error: ImportError) -> ImportError:
    """
    What an import that failed for C{scheme} (a database's, or
    C{prometheus}) is refused with.

    @param error: the import's error.
    @return: a C{ModuleNotFoundError} whose message names the extra and its
        C{pip install} line (L{requireExtra}'s), when a module of the extra
        is missing; else C{error} itself (it failed for another reason).
    """
    try:
        requireExtra(scheme)
    except ValueError as refused:
        return ModuleNotFoundError(str(refused), name=error.name)
    return error


def checkDatabaseURL(url: str) -> str:
    """
    Refuse a URL that names no database txsessions has.

    @param url: a database URL.
    @return: its scheme, lowercased.
    @raise ValueError: when the scheme is unknown, or its database's extra
        is not installed.
    """
    scheme, _, path = url.partition(":")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown database URL {withoutPassword(url)!r}: use memory:, "
            "sqlite:PATH, lmdb:PATH or redis://HOST:PORT/DB"
        )
    if scheme != "memory" and not path:
        raise ValueError(f"database URL {url!r} names no path: use {scheme}:PATH")
    if scheme == "sqlite" and _inMemorySQLite(path):
        raise ValueError(
            f"database URL {url!r} names an in-memory SQLite database, which "
            "txsessions' threads would each see empty: use memory: for "
            "sessions in this process, or sqlite:PATH for a file"
        )
    requireExtra(scheme)
    return scheme


def _inMemorySQLite(path: str) -> bool:
    from .sqlite import isInMemory

    return isInMemory(path)


def withoutPassword(url: str) -> str:
    """
    A database URL fit for a message: its password, if it has one, masked.

    @param url: a database URL.
    @return: C{url} with C{user:password@} shown as C{user:***@}, and a
        C{password=} query parameter as C{password=***}.
    """
    # The parameter first: a "@" in it is no user's password's end.
    url = _queryPassword.sub(r"\g<1>***", url)
    return _userPassword.sub(r"\g<1>***@", url)


def openDatabase(
    url: str,
    clock: IReactorTime | None = None,
    maxSessions: int | None = None,
    deadline: float = 3.0,
) -> IDatabase:
    """
    Open the database a URL names.

    @param url: C{memory:} (the default database, in this process),
        C{sqlite:PATH} (a file), C{lmdb:PATH} (a directory), or a Redis URL
        (C{redis://[user:password@]host:port/db}, C{rediss://...},
        C{unix:///path?db=0}).
    @param clock: the time source for expirations; the global reactor when
        C{None}.
    @param maxSessions: the most live sessions the database holds (0: no
        limit; C{None}: the database's default, which is no limit but for
        the memory database, C{MemoryDatabase.DEFAULT_MAX_SESSIONS}).
    @param deadline: the manager's deadline for each database call, in
        seconds (L{Config.databaseTimeout<txsessions.Config>}; 0: none):
        SQLite, LMDB and Redis refuse a write that would land after it, so
        a request answered 503 never has its change applied later.
    @return: the database.
    @raise ValueError: when the URL names no database txsessions has.
    """
    scheme = checkDatabaseURL(url)
    path = url.partition(":")[2]
    if scheme == "memory":
        from .memory import MemoryDatabase

        if maxSessions is None:
            return MemoryDatabase(clock)
        return MemoryDatabase(clock, maxSessions)
    if scheme in ("redis", "rediss", "unix", "redis+sentinel"):
        from .redis import RedisDatabase

        if maxSessions:
            raise ValueError(
                "the Redis database has no maxSessions: use Redis maxmemory"
            )
        return RedisDatabase(url, clock, deadline=deadline)
    if scheme == "sqlite":
        from .sqlite import SQLiteDatabase

        return SQLiteDatabase(
            path, clock=clock, maxSessions=maxSessions or 0, timeout=deadline or None
        )
    from .lmdb import LMDBDatabase

    return LMDBDatabase(
        path, clock=clock, maxSessions=maxSessions or 0, timeout=deadline or None
    )
