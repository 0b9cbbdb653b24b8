# -*- test-case-name: tests.test_ids -*-
"""
Session ids: how they are made, what a well-formed one looks like, and the
store key derived from each.

An id is the secret in the session cookie.  Databases never see it: they are
keyed by L{storeKey}, the SHA-256 of the id, so a copy of the database, or a
timing difference in a lookup, gives nobody a cookie to present.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from binascii import b2a_base64
from collections.abc import Callable
from typing import Protocol

from twisted.web.iweb import IRequest


class _Digest(Protocol):
    def hexdigest(self) -> str: ...


def _builtinSHA256() -> Callable[[bytes], _Digest]:
    """
    CPython's own SHA-256 when the interpreter has it, else C{hashlib}'s.

    Both give the same digest.  Measured in a request, where its per-call
    setup runs with cold caches, OpenSSL's made each request 5 to 8 us
    slower than the built-in one; every request with a cookie hashes one.
    """
    for module in ("_sha2", "_sha256"):  # CPython 3.12+, 3.11
        try:
            return importlib.import_module(module).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            pass
    return hashlib.sha256


_sha256 = _builtinSHA256()

ID_BYTES = 32
"""
How many random bytes a generated id carries: 256 bits, twice the 128 bits
OWASP asks for.
"""

_URLSAFE = bytes.maketrans(b"+/", b"-_")

MIN_ID_LENGTH = 22
MAX_ID_LENGTH = 128

WELL_FORMED = re.compile(rf"[A-Za-z0-9_-]{{{MIN_ID_LENGTH},{MAX_ID_LENGTH}}}")
"""
What a session id looks like (use its C{fullmatch}); see L{isWellFormedID}.
"""

WELL_FORMED_BYTES = re.compile(WELL_FORMED.pattern.encode("ascii"))
"""
L{WELL_FORMED}, for bytes.
"""


def generateSessionID(request: IRequest | None = None) -> str:
    """
    Make a new session id from the operating system's CSPRNG.

    @param request: the request the session starts in (unused; custom
        generators may look at it).
    @return: 43 URL-safe base64 characters carrying 256 random bits.
    """
    # secrets.token_urlsafe, in three C calls: the same 43 characters of
    # URL-safe base64 from the same CSPRNG (os.urandom).
    return (
        b2a_base64(os.urandom(ID_BYTES), newline=False)[:43]
        .translate(_URLSAFE)
        .decode("ascii")
    )


def isWellFormedID(value: str) -> bool:
    """
    Tell whether C{value} may be a session id: 22 to 128 characters of the
    URL-safe base64 alphabet.  Checked before anything reaches a database.

    @param value: a candidate id, typically a cookie value.
    @return: C{True} when it is well formed.
    """
    return WELL_FORMED.fullmatch(value) is not None


def storeKey(sessionID: str) -> str:
    """
    Derive the database key of a session from its id.

    @param sessionID: a well-formed session id.
    @return: 64 lowercase hexadecimal characters (SHA-256).
    """
    return _sha256(sessionID.encode("ascii")).hexdigest()


def redact(secret: str) -> str:
    """
    Shorten an id or key for a log line, so that no log holds it in full.

    @param secret: an id or a store key.
    @return: its first six characters followed by an ellipsis.
    """
    return secret[:6] + "\N{HORIZONTAL ELLIPSIS}"
