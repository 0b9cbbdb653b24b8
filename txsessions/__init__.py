"""
txsessions: HTTP sessions for Twisted and Klein, after Iris's sessions, but
asynchronous and secure by default::

    from klein import Klein
    from txsessions import Config, Sessions

    app = Klein()
    sessions = Sessions(Config(cookie="sid", expires=3600))

    @app.route("/login")
    @sessions.withSession
    def login(request, session):
        session.set("authenticated", True)
        return "welcome"
"""

from importlib.metadata import version as _version

from .config import Config, CookieEncoding
from .db.memory import MemoryDatabase
from .errors import (
    DatabaseError,
    EntryError,
    EntryNotFound,
    EntryTypeError,
    ImmutableValueError,
    NoSessionError,
    SessionDestroyedError,
    SessionError,
    SessionIDError,
    SessionLimitError,
    ValueNotDecodable,
    ValueNotSerializable,
)
from .interfaces import DestroyListener, IDatabase
from .manager import Sessions
from .records import DestroyReason, Lifetime, SessionChanges, StoredSession
from .session import Session
from .web import SessionResource, get

__version__ = _version("txsessions")

__all__ = [
    "Config",
    "CookieEncoding",
    "DatabaseError",
    "DestroyListener",
    "DestroyReason",
    "EntryError",
    "EntryNotFound",
    "EntryTypeError",
    "IDatabase",
    "ImmutableValueError",
    "Lifetime",
    "MemoryDatabase",
    "NoSessionError",
    "Session",
    "SessionChanges",
    "SessionDestroyedError",
    "SessionError",
    "SessionIDError",
    "SessionLimitError",
    "SessionResource",
    "Sessions",
    "StoredSession",
    "ValueNotDecodable",
    "ValueNotSerializable",
    "get",
]
