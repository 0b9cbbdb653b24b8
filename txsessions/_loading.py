# -*- test-case-name: tests.test_manager,tests.test_web -*-
"""
A request's session, loaded from the session ids its cookies name: the
first that names a live, readable session, or else a new session.

It answers at once when the database did (memory, LMDB reads): the session
itself then, and a L{Deferred} only when the database has yet to answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from time import perf_counter
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from . import cookies
from ._calls import LATER, isDeferred
from ._fields import LoadedParts
from ._hold import connectionOf, cookieHeaders
from ._parts import Parts
from .config import Config
from .errors import DatabaseError
from .ids import redact, storeKey
from .records import Lifetime, StoredSession
from .session import Session, SessionOwner, noteSeen, setLifetime

_log = Logger()


Found = list[tuple[str, bool, str]]
"""
The session ids a request's cookies name, each with whether it came in the
current cookie (else the cookie is to be re-sent) and its store key.
"""

_MEMO = "_txsessionsCookie"
"""
The connection attribute that remembers the last C{Cookie} header read on
it and the ids it named: a browser sends the same one on every request of a
keep-alive connection, and reading it (checking it, hashing each id) costs
more than the rest of loading a session.
"""


def cookieSessions(
    parts: Parts, config: Config, request: IRequest
) -> tuple[bool, Found]:
    """
    The session ids the request's cookies name (L{cookies.sessionIDs}),
    with their store keys.  Without a cookie encoding, they are kept on the
    connection for its next request carrying the same C{Cookie} header.

    @param parts: the manager's parts.
    @param config: the configuration, with the request's cookie options.
    @param request: the request.
    @return: whether the request carried a session cookie, and the ids.
    """
    connection = None
    header = None
    headers = cookieHeaders(request)
    if not headers:
        return False, []
    if len(headers) == 1 and config.encoding is None:
        connection = connectionOf(request)
        if connection is not None:
            header = headers[0]
            memo = getattr(connection, _MEMO, None)
            if memo is not None and memo[0] == header and memo[1] is config:
                return memo[2], list(memo[3])
    received, ids = cookies.sessionIDs(config, request, parts.cookieName)
    found = [(sessionID, current, storeKey(sessionID)) for sessionID, current in ids]
    if connection is not None:
        setattr(connection, _MEMO, (header, config, received, tuple(found)))
    return received, found


class Loader(SessionOwner, Protocol):
    """
    What a session is loaded for: the request it will belong to, told of a
    session (or a failure) that comes later.
    """

    def loaded(self, result: Session | Failure) -> Any:
        """
        Take the session loaded after L{loadSession} returned, or why it
        could not be.

        @return: what the L{Deferred} that L{loadSession} returned is to
            fire with: C{result}, or what the owner made of it.
        """


def loadSession(
    parts: Parts, config: Config, owner: Loader, found: Found
) -> Session | Deferred[Any]:
    """
    Load the session the first of C{found} names that is live and readable,
    or make a new one.

    @param parts: the manager's parts.
    @param config: the configuration, with the request's cookie options.
    @param owner: the request the session belongs to.
    @param found: the session ids the cookies name (L{cookieSessions});
        consumed.
    @return: the session, or a L{Deferred} firing with it, of which
        C{owner.loaded} is told first.
    @raise DatabaseError: when the database failed at once.
    """
    atOnce = parts.loadAtOnce
    while found:
        sessionID, current, key = found.pop(0)
        started = perf_counter()
        if atOnce is not None:
            try:
                loaded = atOnce(key)
            except Exception as e:
                raise parts.calls.failed(e, "load") from e
            if loaded is not LATER:
                parts.loadLatency.add(perf_counter() - started)
                if loaded is None:
                    _unknown(sessionID)
                    continue
                session = _accept(
                    parts, config, owner, sessionID, key, current, *loaded
                )
                if session is not None:
                    return session
                continue
        try:
            inParts = parts.loadParts
            loading = parts.database.load(key) if inParts is None else inParts(key)
        except Exception as e:
            raise parts.calls.failed(e, "load") from e
        # A callback rather than a coroutine, and the call's own: it runs
        # on every request a remote database serves.
        stored = parts.calls.now(
            loading,
            "load",
            started,
            _acceptLater,
            parts,
            config,
            owner,
            sessionID,
            key,
            current,
            found,
        )
        if isDeferred(stored):
            return stored
        session = _acceptStored(parts, config, owner, stored, sessionID, key, current)
        if session is not None:
            return session
    return newSession(parts, owner)


def newSession(parts: Parts, owner: SessionOwner) -> Session:
    """
    @return: a new session for C{owner}'s request, with a new lifetime.
    """
    return Session(owner, None, None, parts.policy.newTimes(parts.clock.seconds()))


def _acceptLater(
    result: StoredSession | LoadedParts | None | Failure,
    parts: Parts,
    config: Config,
    owner: Loader,
    sessionID: str,
    key: str,
    current: bool,
    found: Found,
) -> Any:
    """
    @return: the session, a L{Deferred} firing with it, or the failure.
    """
    if isinstance(result, Failure):
        return owner.loaded(result)
    try:
        session = _acceptStored(parts, config, owner, result, sessionID, key, current)
        if session is None:
            next = loadSession(parts, config, owner, found)
            if isDeferred(next):
                return next  # owner.loaded is told when it fires
            session = next
    except Exception:
        return owner.loaded(Failure())
    return owner.loaded(session)


def _acceptStored(
    parts: Parts,
    config: Config,
    owner: SessionOwner,
    stored: StoredSession | LoadedParts | None,
    sessionID: str,
    key: str,
    current: bool,
) -> Session | None:
    if stored is None:
        _unknown(sessionID)
        return None
    if type(stored) is tuple and parts.loadParts is not None:
        # What loadParts answers (LoadedParts); load itself answers a record.
        return _accept(parts, config, owner, sessionID, key, current, *stored)
    if not isinstance(stored, StoredSession):
        error = (
            f"{type(parts.database).__name__}.load answered a "
            f"{type(stored).__name__}, not a StoredSession or None"
        )
        raise parts.calls.failed(DatabaseError(error), "load")
    lifetime = stored.lifetime
    return _accept(
        parts,
        config,
        owner,
        sessionID,
        key,
        current,
        lifetime.createdAt,
        lifetime.expiresAt,
        stored.values,
    )


def _unknown(sessionID: str) -> None:
    _log.info(
        "unknown session id {id} ignored",
        id=redact(sessionID),
        security="unknown",
    )


def _accept(
    parts: Parts,
    config: Config,
    owner: SessionOwner,
    sessionID: str,
    key: str,
    current: bool,
    createdAt: float,
    expiresAt: float | None,
    fields: Mapping[str, str],
) -> Session | None:
    """
    The session a loaded record makes, or C{None} when it is no longer live
    or cannot be read.  A record that cannot be decoded, for whatever
    reason, counts as none: the client gets a new session, not an error.
    """
    now = parts.clock.seconds()
    policy = parts.policy
    # Lifetime.hasExpired, inline when there is no more to the policy; the
    # session makes its Lifetime only if it is asked for it.
    lifetime = None if policy.fixed else Lifetime(createdAt, expiresAt)
    if (
        (expiresAt is not None and now >= expiresAt)
        if lifetime is None
        else policy.hasEnded(lifetime, now)
    ):
        _log.info("session {key} has ended", key=redact(key), security="ended")
        return None
    try:
        session = Session(
            owner, sessionID, key, lifetime or (createdAt, expiresAt), fields
        )
    except Exception as e:
        _log.warn(
            "session {key} holds data that cannot be decoded ({error}); "
            "a new session replaces it",
            key=redact(key),
            error=type(e).__name__,
            security="corrupt",
        )
        return None
    if not current:
        session.changes.cookieDirty = True
    # Owners (issue 19): the owner's last-seen time, written coarsely.
    wrote = noteSeen(session, now, config.lastSeenInterval)
    if lifetime is not None:
        touched = policy.touched(lifetime, now)
        if touched is not None:
            setLifetime(session, touched)
            wrote = True
    if wrote:
        session.changes.keepOwn(session.lifetime)
    return session
