"""
The modules of the C{redis} extra, which a Redis database needs: refused,
when one is missing, with the C{pip install} line that brings it.
"""

from __future__ import annotations

import importlib

from ._url import RedisURL


def schemeOf(where: RedisURL) -> str:
    """
    The URL scheme that says where C{where} is, as L{openDatabase
    <txsessions.db.openDatabase>} knows it.

    @param where: a Redis server.
    """
    if where.socket is not None:
        return "unix"
    if where.service is not None:
        return "redis+sentinel"
    return "rediss" if where.tls else "redis"


def requireModules(where: RedisURL) -> None:
    """
    Import the modules a database at C{where} needs: txredisapi, and over
    TLS pyOpenSSL and service_identity.

    @param where: a Redis server.
    @raise ModuleNotFoundError: when one of them is missing, its message
        naming the extra as L{requireExtra <txsessions.db.requireExtra>}
        words it: C{pip install 'txsessions[redis]'}.
    """
    modules = ["txredisapi"]
    if where.tls:
        modules += ["OpenSSL", "service_identity"]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            refused = _missingExtra(where, e)
            if refused is None:
                raise
            raise refused from None


def _missingExtra(where: RedisURL, missing: ImportError) -> ImportError | None:
    """
    The error a missing module of the extra is refused with, its message
    L{requireExtra <txsessions.db.requireExtra>}'s; or C{None} when every
    module of the extra is installed (one failed to import for another
    reason, which its own error says).
    """
    from .. import requireExtra

    try:
        requireExtra(schemeOf(where))
    except ValueError as refused:
        return ModuleNotFoundError(str(refused), name=missing.name)
    return None
