# -*- test-case-name: tests.test_manager -*-
"""
L{Sessions}, the manager: it starts a request's session from its cookie,
saves it before the response completes, destroys sessions and tells the
destroy listeners.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, FirstError, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.components import Componentized
from twisted.web.iweb import IRequest
from zope.interface import Interface

from . import cookies
from .config import Config, toSeconds
from .errors import (
    DatabaseError,
    NoSessionError,
    SessionDestroyedError,
    SessionError,
    SessionIDError,
)
from .ids import isWellFormedID, redact, storeKey
from .interfaces import DestroyListener, IDatabase
from .listeners import Listeners
from .records import DestroyReason, Lifetime, StoredSession
from .responses import HeldResponse
from .session import Session

if TYPE_CHECKING:
    from twisted.web.resource import IResource

_log = Logger()


class _IRequestSession(Interface):
    """
    Marks the L{_RequestSession} a request carries as a component.
    """


class Sessions:
    """
    The sessions manager (Iris: C{sessions.Sessions}).

    @ivar config: its L{Config}.
    """

    def __init__(
        self,
        config: Config | None = None,
        database: IDatabase | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param config: the settings; L{Config()} when C{None}.
        @param database: where sessions live; a L{MemoryDatabase} on C{clock}
            when C{None}.
        @param clock: the time source for lifetimes; the global reactor when
            C{None}.  Give a database the same clock.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        if database is None:
            from .db.memory import MemoryDatabase

            database = MemoryDatabase(clock)
        self.config = config if config is not None else Config()
        self._clock = clock
        self._cookieName = self.config.cookie.encode("ascii")
        self._listeners = Listeners()
        self._database = database
        self._unlisten = database.listen(self._listeners.tell)

    @property
    def database(self) -> IDatabase:
        """
        The database sessions are kept in.
        """
        return self._database

    def useDatabase(self, database: IDatabase) -> None:
        """
        Keep sessions in another database from now on.  Sessions in the old
        one are not moved, and the old one is not closed.

        @param database: the new database.
        """
        self._unlisten()
        self._database = database
        self._unlisten = database.listen(self._listeners.tell)

    def onDestroy(self, listener: DestroyListener) -> None:
        """
        Call C{listener} with the store key (L{Session.key}) and a
        L{DestroyReason} whenever a session is destroyed or expires.  A
        listener that raises is logged and the others still run.

        @param listener: a callable taking C{(key, reason)}.
        """
        self._listeners.add(listener)

    def start(self, request: IRequest, **cookieOptions: Any) -> Deferred[Session]:
        """
        Start the request's session: the one its cookie names, if that is a
        live session, or else a new one.  The response then waits for the
        session to be saved.  Starting again in the same request gives the
        same session (after L{Session.destroy}, a new one when
        C{allowReclaim} is set).

        @param request: the request.
        @param cookieOptions: settings of the cookie this response sends,
            replacing the configuration's for this request: C{cookiePath},
            C{cookieDomain}, C{cookieSameSite}, C{cookieHTTPOnly},
            C{cookieSecureTLS}, C{forceSecureCookie}.
        @return: a L{Deferred} firing with the L{Session}, or failing with
            L{DatabaseError} when the database failed.
        @raise TypeError: for an option that is not a cookie setting.
        @raise ValueError: for an invalid setting.
        """
        component = cast(Componentized, request)
        state: _RequestSession | None = component.getComponent(_IRequestSession)
        if state is None:
            state = _RequestSession(self, request)
            component.setComponent(_IRequestSession, state)
        elif state.manager is not self:
            raise SessionError(
                "this request already has a session from another Sessions manager"
            )
        if cookieOptions:
            state.config = self.config.withCookieOptions(**cookieOptions)
        return state.session()

    def destroy(self, request: IRequest) -> Deferred[None]:
        """
        Destroy the request's session, if it has a live one, and make the
        client forget its cookie.

        @param request: the request.
        @return: a L{Deferred} firing once the session is removed.
        """

        async def destroy() -> None:
            session = await self.start(request)
            await session.destroy()

        return Deferred.fromCoroutine(destroy())

    def destroyByID(self, sessionID: str) -> Deferred[bool]:
        """
        Destroy the session with the given id, wherever it was last used.

        @param sessionID: a session id (L{Session.id}).
        @return: a L{Deferred} firing with whether there was such a session.
        """
        if not isWellFormedID(sessionID):
            return succeed(False)
        return self.destroyByKey(storeKey(sessionID))

    def destroyByKey(self, key: str) -> Deferred[bool]:
        """
        Destroy the session with the given store key, as destroy listeners
        receive it.

        @param key: a store key (L{Session.key}).
        @return: a L{Deferred} firing with whether there was such a session.
        """
        return self._call(self._database.destroy(key, DestroyReason.destroyByID))

    def destroyAll(self) -> Deferred[int]:
        """
        Destroy every session in the database.

        @return: a L{Deferred} firing with how many there were.
        """
        return self._call(self._database.destroyAll(DestroyReason.destroyAll))

    def count(self) -> Deferred[int]:
        """
        @return: a L{Deferred} firing with the number of live sessions.
        """
        return self._call(self._database.count())

    def wrap(self, resource: IResource) -> IResource:
        """
        Give every request under C{resource} a session, started before it
        renders and saved before its response completes.  Inside,
        L{txsessions.get} returns it.

        @param resource: any resource, a Klein app's C{resource()} included.
        @return: the wrapping resource.
        """
        from .web import SessionResource

        return SessionResource(self, resource)

    def withSession(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """
        Decorate a Klein route handler so that it receives the request's
        session as the argument after the request::

            @app.route("/")
            @sessions.withSession
            def home(request, session): ...

        @param handler: the route handler, plain or C{async}.
        @return: the decorated handler.
        """
        from .web import withSession

        return withSession(self, handler)

    def shiftExpiration(self, request: IRequest) -> Deferred[None]:
        """
        Restart the request's session lifetime at C{config.expires} from now
        and re-send its cookie (Iris: C{ShiftExpiration}); called on every
        request, it makes expiry sliding.

        @param request: the request.
        @return: a L{Deferred} firing once the session is started; the new
            lifetime is saved with the session.
        """
        return self.updateExpiration(request, self.config.expires)

    def updateExpiration(
        self, request: IRequest, expires: float | timedelta
    ) -> Deferred[None]:
        """
        Give the request's session a new lifetime from now, and re-send its
        cookie with it, replacing any cookie already in this response (Iris:
        C{UpdateExpiration}).  Unlike Iris, a session started in this same
        request can be given one too ("remember me" at login).

        @param request: the request.
        @param expires: seconds or a L{timedelta}; 0 for no server-side
            lifetime and a cookie that lasts until the browser closes.
        @return: a L{Deferred} firing once the session is started; the new
            lifetime is saved with the session.
        @raise ValueError: when C{expires} is not a lifetime.
        """
        seconds = toSeconds(expires)

        async def update() -> None:
            session = await self.start(request)
            now = self._now()
            createdAt = session.lifetime.createdAt
            session._setLifetime(
                Lifetime(createdAt, now + seconds if seconds else None)
            )

        return Deferred.fromCoroutine(update())

    def close(self) -> Deferred[None]:
        """
        Close the database (its timers and connections).

        @return: a L{Deferred} firing once it is closed.
        """
        return self._database.close()

    # Used by _RequestSession

    def _now(self) -> float:
        return self._clock.seconds()

    def _call(self, d: Deferred[Any]) -> Deferred[Any]:
        def failed(failure: Any) -> Any:
            error = failure.value
            if isinstance(error, DatabaseError):
                return failure
            message = f"the session database failed: {type(error).__name__}: {error}"
            raise DatabaseError(message) from error

        return d.addErrback(failed)

    async def _load(self, request: IRequest, owner: _RequestSession) -> Session:
        sessionID = self._readID(request, owner)
        if sessionID is not None and isWellFormedID(sessionID):
            key = storeKey(sessionID)
            stored: StoredSession | None = await self._call(self._database.load(key))
            if stored is not None and not stored.lifetime.hasExpired(self._now()):
                try:
                    return Session(
                        owner, sessionID, key, stored.lifetime, stored.values
                    )
                except ValueError:
                    _log.warn(
                        "session {key} holds data that is not JSON; ignored",
                        key=redact(key),
                    )
        return self._newSession(owner)

    def _readID(self, request: IRequest, owner: _RequestSession) -> str | None:
        raw = cookies.readCookie(request, self._cookieName)
        owner.cookieReceived = raw is not None
        encoding = self.config.encoding
        if raw is None or encoding is None:
            return raw
        try:
            return str(encoding.decode(self.config.cookie, raw))
        except Exception:
            _log.info("a session cookie could not be decoded; ignored")
            return None

    def _cookieValue(self, session: Session) -> str:
        encoding = self.config.encoding
        if encoding is None:
            return session.id
        return str(encoding.encode(self.config.cookie, session.id))

    def _newSession(self, owner: _RequestSession) -> Session:
        now = self._now()
        expires = self.config.expires
        return Session(
            owner, None, None, Lifetime(now, now + expires if expires else None)
        )

    def _newID(self, request: IRequest) -> tuple[str, str]:
        sessionID = self.config.sessionIDGenerator(request)
        if not isinstance(sessionID, str) or not isWellFormedID(sessionID):
            raise SessionIDError(
                "the session id generator must return 22 to 128 characters of "
                "A-Z a-z 0-9 _ -"
            )
        return sessionID, storeKey(sessionID)


class _RequestSession:
    """
    The session of one request, and the response it holds back until the
    session is saved.

    @ivar config: the configuration, with this request's cookie options.
    @ivar cookieReceived: whether the request carried a session cookie.
    """

    def __init__(self, manager: Sessions, request: IRequest) -> None:
        self.manager = manager
        self.request = request
        self.config = manager.config
        self.cookieReceived = False
        self._session: Session | None = None
        self._loading: list[Deferred[Session]] | None = None
        self._pending: list[Deferred[Any]] = []
        self._cookieSent = False
        HeldResponse(request, self.commit)

    def session(self) -> Deferred[Session]:
        """
        @return: a L{Deferred} firing with the current session, loading it
            first if need be.
        """
        session = self._session
        if session is not None:
            if session.destroyed and self.config.allowReclaim:
                session = self._session = self.manager._newSession(self)
            return succeed(session)
        if self._loading is not None:
            waiter: Deferred[Session] = Deferred()
            self._loading.append(waiter)
            return waiter
        self._loading = []
        return Deferred.fromCoroutine(self._load())

    async def _load(self) -> Session:
        try:
            session = await self.manager._load(self.request, self)
        except BaseException as e:
            waiters, self._loading = self._loading or [], None
            for waiter in waiters:
                waiter.errback(e)
            raise
        self._session = session
        waiters, self._loading = self._loading or [], None
        for waiter in waiters:
            waiter.callback(session)
        return session

    def current(self) -> Session | None:
        """
        @return: the session, once loaded.
        """
        return self._session

    def newID(self) -> tuple[str, str]:
        """
        @return: a new session id and its store key.
        """
        return self.manager._newID(self.request)

    def now(self) -> float:
        """
        @return: the manager's current time.
        """
        return self.manager._now()

    def destroy(self, session: Session) -> Deferred[None]:
        """
        Destroy C{session}: remove it from the database and have the client
        forget its cookie.
        """
        stored = session._stored
        key = session._key
        session._markDestroyed()
        if self._canSetCookies() and (self.cookieReceived or self._cookieSent):
            cookies.upsertCookie(
                self.request,
                self.manager._cookieName,
                cookies.deletionCookie(self.config, self.request),
            )
        if not stored or key is None:
            return succeed(None)
        d = self.manager._call(
            self.manager.database.destroy(key, DestroyReason.destroyed)
        )
        self._pending.append(d)
        return d.addCallback(lambda _: None)

    def increment(self, session: Session, key: str, n: int) -> Deferred[int]:
        """
        Save C{session}'s changes now, with C{key} incremented by C{n}.
        """
        headersSent = not self._canSetCookies()
        if not session._stored and headersSent:
            raise SessionError(
                "a new session cannot be saved once the response headers are sent"
            )
        saving = self._save(session, headersSent, {key: n})
        self._pending.append(saving)

        def incremented(values: Mapping[str, int] | None) -> int:
            if values is None:
                raise SessionDestroyedError(
                    "the session was destroyed by another request"
                )
            session._incremented(values)
            return values[key]

        return saving.addCallback(incremented)

    def commit(self, headersSent: bool) -> Deferred[None] | None:
        """
        Save the session before the response goes on: called by
        L{HeldResponse} before the headers are written (C{headersSent} false)
        and again when the response finishes.

        @return: C{None} when there is nothing to wait for, or a L{Deferred}
            that fires once everything is saved and fails with
            L{DatabaseError} when the database failed.
        """
        waits, self._pending = self._pending, []
        session = self._session
        if session is not None and self.request.code < 500:  # type: ignore[attr-defined]
            if not headersSent:
                self.request.responseHeaders.addRawHeader(b"Vary", b"Cookie")
            if session._hasChanges():
                if not session._stored and headersSent:
                    _log.error(
                        "a new session was changed after the response headers were "
                        "sent; it was not saved, as its cookie could not be sent"
                    )
                    session._markDestroyed()
                else:
                    waits.append(self._save(session, headersSent))
        if not waits:
            return None

        def failed(failure: Any) -> Any:
            if self._canSetCookies():
                cookies.removeCookie(self.request, self.manager._cookieName)
            return failure

        return _all(waits).addErrback(failed)

    def _save(
        self,
        session: Session,
        headersSent: bool,
        increments: Mapping[str, int] | None = None,
    ) -> Deferred[Mapping[str, int] | None]:
        manager = self.manager
        changes = session._takeChanges(increments)
        key = session.key
        if changes.create or changes.lifetime is not None:
            if headersSent:
                _log.warn(
                    "a session's new lifetime was saved, but its cookie could "
                    "not be re-sent after the response headers"
                )
            else:
                self._sendCookie(session)

        def saved(result: Mapping[str, int] | None) -> Mapping[str, int] | None:
            if result is None:
                _log.info(
                    "session {key} was destroyed by another request; its "
                    "changes were dropped",
                    key=redact(key),
                )
                session._markDestroyed()
                if self._canSetCookies():
                    cookies.removeCookie(self.request, manager._cookieName)
            return result

        return manager._call(manager.database.save(key, changes)).addCallback(saved)

    def _sendCookie(self, session: Session) -> None:
        manager = self.manager
        now = manager._now()
        expiresAt = session.lifetime.expiresAt
        header = cookies.sessionCookie(
            self.config,
            self.request,
            manager._cookieValue(session),
            None if expiresAt is None else expiresAt - now,
            now,
        )
        cookies.upsertCookie(self.request, manager._cookieName, header)
        self._cookieSent = True

    def _canSetCookies(self) -> bool:
        return not self.request.startedWriting  # type: ignore[attr-defined]


def _all(waits: Sequence[Deferred[Any]]) -> Deferred[None]:
    if len(waits) == 1:
        return waits[0].addCallback(lambda _: None)

    def unwrap(failure: Any) -> Any:
        failure.trap(FirstError)
        return failure.value.subFailure

    return (
        gatherResults(list(waits), consumeErrors=True)
        .addCallback(lambda _: None)
        .addErrback(unwrap)
    )


def currentSession(request: IRequest) -> Session:
    """
    The session started for C{request} by a L{Sessions} manager.

    @param request: the request.
    @return: its L{Session}.
    @raise NoSessionError: when none was started (or it is still loading).
    """
    state: _RequestSession | None = cast(Componentized, request).getComponent(
        _IRequestSession
    )
    session = None if state is None else state.current()
    if session is None:
        raise NoSessionError(
            "no session was started for this request: wrap the resource with "
            "Sessions.wrap, decorate the route with Sessions.withSession, or "
            "call Sessions.start first"
        )
    return session
