"""
The modules of the C{redis} extra, which a Redis database needs: refused,
when one is missing, with the C{pip install} line that brings it.
"""

from __future__ import annotations

import importlib

from .. import missingExtra
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
        naming the extra (L{missingExtra <txsessions.db.missingExtra>}):
        C{pip install 'txsessions[redis]'}.
    """
    modules = ["txredisapi"]
    if where.tls:
        modules += ["OpenSSL", "service_identity"]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise missingExtra(schemeOf(where), e) from None
