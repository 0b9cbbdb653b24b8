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

from importlib.metadata import PackageNotFoundError, version

from .config import Config, CookieEncoding
from .db.memory import MemoryDatabase
from .errors import (
    DatabaseError,
    EntryNotFound,
    EntryTypeError,
    ImmutableValueError,
    NoSessionError,
    SessionConflictError,
    SessionDestroyedError,
    SessionError,
    ValueNotSerializable,
)
from .manager import Sessions
from .records import DestroyReason
from .session import Session
from .web import SessionResource, get

try:
    __version__ = version("txsessions")
    "The installed version, from the package metadata (pyproject.toml)."
except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
    __version__ = "0+unknown"

__all__ = [
    "Config",
    "CookieEncoding",
    "DatabaseError",
    "DestroyReason",
    "EntryNotFound",
    "EntryTypeError",
    "ImmutableValueError",
    "MemoryDatabase",
    "NoSessionError",
    "Session",
    "SessionConflictError",
    "SessionDestroyedError",
    "SessionError",
    "SessionResource",
    "Sessions",
    "ValueNotSerializable",
    "__version__",
    "get",
]
