# -*- test-case-name: tests.test_manager -*-
"""
L{Sessions}, the manager: it starts a request's session from its cookie,
saves it before the response completes, destroys sessions and tells the
destroy listeners.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    FirstError,
    fail,
    gatherResults,
    succeed,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

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
from .metrics import Metrics
from .records import DestroyReason, Lifetime, SessionChanges, StoredSession
from .responses import HeldResponse
from .session import Session

if TYPE_CHECKING:
    from twisted.web.resource import IResource

_log = Logger()

T = TypeVar("T")


_STATE = "_txsessionsState"
"""
The request attribute that holds the request's L{_RequestSession}.
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
        self.metrics = Metrics()
        "What this manager counts: see L{txsessions.metrics.Metrics}."
        self._database = database
        self._unlisten = database.listen(self._destroyed)

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
        self._unlisten = database.listen(self._destroyed)

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
        try:
            loaded = self._start(request, cookieOptions)
        except DatabaseError:
            return fail()
        return succeed(loaded) if isinstance(loaded, Session) else loaded

    def _start(
        self, request: IRequest, cookieOptions: Mapping[str, Any] | None = None
    ) -> Session | Deferred[Session]:
        """
        L{start}, answering at once when the database did: the session
        itself, or a L{Deferred} when the database has yet to answer.

        @raise DatabaseError: when the database failed at once.
        """
        state: _RequestSession | None = getattr(request, _STATE, None)
        if state is None:
            state = _RequestSession(self, request)
            setattr(request, _STATE, state)
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
        Restart the request's session lifetime at C{config.expires} (or, for
        an idle-timed session, C{config.idleTimeout}) from now and re-send
        its cookie (Iris: C{ShiftExpiration}); called on every request, it
        makes expiry sliding.

        @param request: the request.
        @return: a L{Deferred} firing once the session is started; the new
            lifetime is saved with the session.
        """
        return self.updateExpiration(
            request, self.config.expires or self.config.idleTimeout
        )

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
            expiresAt = self._cap(createdAt, now + seconds if seconds else None)
            session._setLifetime(Lifetime(createdAt, expiresAt))

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

    def _call(
        self, d: Deferred[T], kind: str = "other", started: float | None = None
    ) -> Deferred[T]:
        """
        Give a database call its deadline, time it, and make any failure a
        L{DatabaseError}.

        @param d: what the database returned.
        @param kind: C{load}, C{save} or C{other}, for L{Metrics.latency}.
        @param started: when the call was made (C{perf_counter}); now, when
            C{None}.
        """
        latency = self.metrics.latency[kind]
        begun = perf_counter() if started is None else started

        def timed(result: Any) -> Any:
            latency.add(perf_counter() - begun)
            return result

        d.addBoth(timed)
        timeout = self.config.databaseTimeout
        # A Deferred that has fired may still wait on another (paused).
        if timeout and (not d.called or d.paused):
            d = _raceAgainst(d, timeout, self._clock)

        def failed(failure: Failure) -> Any:
            if failure.check(CancelledError):
                # The request was given up (its client went away): no fault
                # of the database's.
                return failure
            raise self._storeFailed(cast(BaseException, failure.value), kind)

        return d.addErrback(failed)

    def _answered(self, d: Deferred[T], kind: str, started: float) -> T | _Pending:
        """
        The result of a database call that answered before it returned, as
        the memory database's do, taken without running a callback; or
        L{_PENDING}.

        @raise DatabaseError: when it failed.
        """
        if not d.called or d.paused:
            return _PENDING
        self.metrics.latency[kind].add(perf_counter() - started)
        result = d.result
        if isinstance(result, Failure):
            d.addErrback(lambda _: None)
            if result.check(CancelledError):
                result.raiseException()
            raise self._storeFailed(cast(BaseException, result.value), kind)
        return result  # type: ignore[return-value]

    def _storeFailed(self, error: BaseException, kind: str) -> DatabaseError:
        """
        Count and log a database failure.

        @return: it, as a L{DatabaseError}.
        """
        self.metrics.storeErrors += 1
        _log.error(
            "the session database failed ({kind}): {error}",
            kind=kind,
            error=f"{type(error).__name__}: {error}",
            sessionEvent="storeError",
        )
        if isinstance(error, DatabaseError):
            return error
        message = f"the session database failed: {type(error).__name__}: {error}"
        wrapped = DatabaseError(message)
        wrapped.__cause__ = error
        return wrapped

    def _destroyed(self, key: str, reason: DestroyReason) -> None:
        """
        Count, log and announce a session the database destroyed.
        """
        self.metrics.destroyed[reason.value] += 1
        _log.info(
            "session {key} destroyed ({reason})",
            key=redact(key),
            reason=reason.value,
            sessionEvent="destroyed",
        )
        self._listeners.tell(key, reason)

    def _created(self, key: str) -> None:
        """
        Count and log a session this manager created.
        """
        self.metrics.created += 1
        _log.info("session {key} created", key=redact(key), sessionEvent="created")

    def _loadFrom(
        self, candidates: list[tuple[str, bool]], owner: _RequestSession
    ) -> Session | Deferred[Session]:
        """
        Load the session the first of C{candidates} (from L{_candidates})
        that names a live, readable session, or make a new one.  A database
        that has answered by the time it returns (memory, LMDB) is read at
        once, with no L{Deferred} on the way.
        """
        now = self._clock.seconds()
        while candidates:
            sessionID, current = candidates.pop(0)
            key = storeKey(sessionID)
            started = perf_counter()
            try:
                loading = self._database.load(key)
            except Exception as e:
                raise self._storeFailed(e, "load") from e
            stored = self._answered(loading, "load", started)
            if isinstance(stored, _Pending):
                waiting = self._call(loading, "load", started)
                return waiting.addCallback(
                    self._acceptLater, sessionID, key, current, candidates, owner
                )
            session = self._accept(stored, sessionID, key, current, now, owner)
            if session is not None:
                return session
        return self._newSession(owner)

    def _acceptLater(
        self,
        stored: StoredSession | None,
        sessionID: str,
        key: str,
        current: bool,
        candidates: list[tuple[str, bool]],
        owner: _RequestSession,
    ) -> Session | Deferred[Session]:
        """
        L{_accept} for a database that answered later, then the next
        candidate when this one named no session.  A callback rather than a
        coroutine: it runs on every request a remote database serves, and a
        coroutine's L{Deferred} costs more than the rest of it.
        """
        session = self._accept(stored, sessionID, key, current, self._now(), owner)
        return session if session is not None else self._loadFrom(candidates, owner)

    def _accept(
        self,
        stored: StoredSession | None,
        sessionID: str,
        key: str,
        current: bool,
        now: float,
        owner: _RequestSession,
    ) -> Session | None:
        """
        The session a candidate id names, or C{None} when it names no live,
        readable session.
        """
        if stored is None:
            _log.info(
                "unknown session id {id} ignored",
                id=redact(sessionID),
                security="unknown",
            )
            return None
        lifetime = stored.lifetime
        if self._hasEnded(lifetime, now):
            _log.info("session {key} has ended", key=redact(key), security="ended")
            return None
        try:
            session = Session(owner, sessionID, key, lifetime, stored.values)
        except ValueError:
            _log.warn(
                "session {key} holds data that is not JSON; ignored",
                key=redact(key),
                security="corrupt",
            )
            return None
        if not current:
            session._cookieDirty = True
        self._touch(session, now)
        return session

    def _candidates(
        self, request: IRequest, owner: _RequestSession
    ) -> list[tuple[str, bool]]:
        """
        The session ids the request's cookies carry, verified (when there is
        an encoding) and well formed, each with whether its cookie is current.
        """
        values = cookies.readCookies(request, self._cookieName)
        if not values:
            return []
        owner.cookieReceived = True
        if len(values) > 1:
            _log.info(
                "{n} session cookies in one request", n=len(values), security="several"
            )
        encoding = self.config.encoding
        opener = getattr(encoding, "open", None)
        candidates = []
        for value in values:
            current = True
            if encoding is not None:
                try:
                    if opener is not None:
                        opened = opener(self.config.cookie, value)
                        value, current = str(opened.value), bool(opened.current)
                    else:
                        value = str(encoding.decode(self.config.cookie, value))
                except Exception as e:
                    _log.info(
                        "session cookie rejected: {why}",
                        why=str(e),
                        security="tampered",
                    )
                    continue
                if not current:
                    _log.info("session cookie due for re-issue", security="oldKey")
            if isWellFormedID(value):
                candidates.append((value, current))
            else:
                _log.info("malformed session id ignored", security="malformed")
        return candidates

    def _hasEnded(self, lifetime: Lifetime, now: float) -> bool:
        absolute = self.config.absoluteTimeout
        return lifetime.hasExpired(now) or bool(
            absolute and lifetime.createdAt + absolute <= now
        )

    def _cap(self, createdAt: float, expiresAt: float | None) -> float | None:
        """
        Apply the absolute timeout to an expiry time.
        """
        absolute = self.config.absoluteTimeout
        if not absolute:
            return expiresAt
        cap = createdAt + absolute
        return cap if expiresAt is None else min(expiresAt, cap)

    def _touch(self, session: Session, now: float) -> None:
        """
        Push back the end of an idle-timed session, at most once per
        twentieth of the timeout.
        """
        idle = self.config.idleTimeout
        lifetime = session.lifetime
        if not idle or lifetime.expiresAt is None:
            return
        desired = self._cap(lifetime.createdAt, now + idle)
        if desired is not None and desired - lifetime.expiresAt >= max(1.0, idle / 20):
            session._setLifetime(Lifetime(lifetime.createdAt, desired))

    def _cookieValue(self, session: Session) -> str:
        encoding = self.config.encoding
        if encoding is None:
            return session.id
        return str(encoding.encode(self.config.cookie, session.id))

    def _newLifetime(self) -> Lifetime:
        """
        The lifetime of a session created now: C{expires} or C{idleTimeout},
        capped by C{absoluteTimeout}.
        """
        now = self._now()
        lifetime = self.config.expires or self.config.idleTimeout
        return Lifetime(now, self._cap(now, now + lifetime if lifetime else None))

    def _newSession(self, owner: _RequestSession) -> Session:
        return Session(owner, None, None, self._newLifetime())

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

    __slots__ = (
        "manager",
        "request",
        "config",
        "cookieReceived",
        "_session",
        "_loading",
        "_pending",
        "_cookieSent",
    )

    def __init__(self, manager: Sessions, request: IRequest) -> None:
        self.manager = manager
        self.request = request
        self.config = manager.config
        self.cookieReceived = False
        self._session: Session | None = None
        self._loading: list[Deferred[Session]] | None = None
        self._pending: list[Deferred[None]] = []
        self._cookieSent = False
        HeldResponse(request, self.commit)

    def session(self) -> Session | Deferred[Session]:
        """
        @return: the current session, loading it first if need be: the
            session itself when it is at hand, or a L{Deferred} firing with
            it once the database answers.
        @raise DatabaseError: when the database failed at once.
        """
        session = self._session
        if session is not None:
            if session.destroyed and self.config.allowReclaim:
                session = self._session = self.manager._newSession(self)
            return session
        if self._loading is not None:
            waiter: Deferred[Session] = Deferred()
            self._loading.append(waiter)
            return waiter
        manager = self.manager
        loaded = manager._loadFrom(manager._candidates(self.request, self), self)
        if isinstance(loaded, Session):
            self._session = loaded
            return loaded
        self._loading = []
        return loaded.addBoth(self._loaded)

    def _loaded(self, result: Session | Failure) -> Session | Failure:
        waiters, self._loading = self._loading or [], None
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
        else:
            self._session = result
            for waiter in waiters:
                waiter.callback(result)
        return result

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
        stored, key = session._stored, session._key
        session._markDestroyed()
        if self._headersUnsent() and (self.cookieReceived or self._cookieSent):
            cookies.upsertCookie(
                self.request,
                self.manager._cookieName,
                cookies.deletionCookie(self.config, self.request),
            )
        if not stored or key is None:
            return succeed(None)
        database = self.manager.database
        destroying = self.manager._call(database.destroy(key, DestroyReason.destroyed))
        return self._track(destroying).addCallback(lambda _: None)

    def regenerate(self, session: Session) -> Deferred[None]:
        """
        Give C{session} a new id, keeping its data; the old id is dead once
        the returned L{Deferred} fires, and the response carries the new one.
        """
        session._checkAlive()
        oldKey = session._key if session._stored else None
        session._id, session._key = self.newID()
        if oldKey is None:
            return succeed(None)
        session._cookieDirty = True
        database = self.manager.database
        renaming = self.manager._call(database.rename(oldKey, session.key))

        def renamed(moved: bool) -> None:
            if not moved:
                _log.info(
                    "session {key} was destroyed before it could be regenerated",
                    key=redact(oldKey),
                )
                session._markDestroyed()
            else:
                _log.info(
                    "session {key} regenerated",
                    key=redact(oldKey),
                    sessionEvent="regenerated",
                )

        return self._track(renaming).addCallback(renamed)

    def increment(self, session: Session, key: str, n: int) -> Deferred[int]:
        """
        Save C{session}'s changes now, with C{key} incremented by C{n}.
        """
        saving = self._flush(session, not self._headersUnsent(), {key: n})
        if saving is None:
            raise SessionError(
                "a new session cannot be created once the response headers are "
                "sent, or over plain HTTP when its cookie must be Secure"
            )

        def incremented(values: Mapping[str, int] | None) -> int:
            if values is None:
                raise SessionDestroyedError(
                    "the session was destroyed by another request"
                )
            session._incremented(values)
            return values[key]

        return self._track(saving).addCallback(incremented)

    def commit(self, headersSent: bool) -> Deferred[None] | None:
        """
        Save the session before the response goes on: called by
        L{HeldResponse} before the headers are written (C{headersSent} false)
        and again when the response finishes.

        @return: C{None} when there is nothing to wait for, or a L{Deferred}
            that fires once everything is saved and fails with
            L{DatabaseError} when the database failed.
        """
        waits = self._pending
        session = self._session
        if session is not None and self.request.code < 500:  # type: ignore[attr-defined]
            if not headersSent:
                cookies.markPrivate(self.request)
            if session._cookieDirty or session._hasChanges():
                saving = self._flush(session, headersSent)
                if saving is not None and not _succeeded(saving):
                    waits.append(saving.addCallback(lambda _: None))
        if not waits:
            return None
        self._pending = []

        def failed(failure: Any) -> Any:
            if self._headersUnsent():
                cookies.removeCookie(self.request, self.manager._cookieName)
            return failure

        return _all(waits).addErrback(failed)

    def _flush(
        self,
        session: Session,
        headersSent: bool,
        increments: Mapping[str, int] | None = None,
    ) -> Deferred[Mapping[str, int] | None] | None:
        """
        Save what changed in C{session} (with C{increments}) and send its
        cookie when it is new, has a new lifetime, a new id, or a cookie due
        for re-issue.

        @return: the save, or C{None} when there was nothing to save (or a
            new session could not be given its cookie, and was dropped).
        """
        changed = bool(increments) or session._hasChanges()
        creating = changed and not session._stored
        if creating:
            session._cookieDirty = True
        if creating and (headersSent or not self._canSendCookie()):
            _log.error(
                "a new session was not saved: its cookie could not be sent "
                "(the response headers were sent, or the cookie must be Secure "
                "and the request came over plain HTTP)"
            )
            session._markDestroyed()
            return None
        saving = None
        if changed:
            key = session.key
            cookieValue = self.manager._cookieValue(session) if creating else None
            saving = self._save(session, key, session._takeChanges(increments))
        else:
            cookieValue = None
        if session._stored and session._cookieDirty:
            if headersSent:
                _log.warn(
                    "a session's cookie changed after the response headers were sent"
                )
            elif self._canSendCookie():
                self._sendCookie(session, cookieValue)
            session._cookieDirty = False
        return saving

    def _save(
        self, session: Session, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        manager = self.manager

        def saved(result: Mapping[str, int] | None) -> Mapping[str, int] | None:
            if result is None:
                _log.info(
                    "session {key} was destroyed by another request; its "
                    "changes were dropped",
                    key=redact(key),
                )
                session._markDestroyed()
                if self._headersUnsent():
                    cookies.removeCookie(self.request, manager._cookieName)
            elif changes.create:
                manager._created(key)
            return result

        started = perf_counter()
        saving = manager.database.save(key, changes)
        try:
            result = manager._answered(saving, "save", started)
        except Exception:
            return fail()
        if isinstance(result, _Pending):
            return manager._call(saving, "save", started).addCallback(saved)
        saved(result)
        return saving

    def _sendCookie(self, session: Session, value: str | None = None) -> None:
        manager = self.manager
        now = manager._now()
        expiresAt = session.lifetime.expiresAt
        header = cookies.sessionCookie(
            self.config,
            self.request,
            value if value is not None else manager._cookieValue(session),
            None if expiresAt is None else expiresAt - now,
            now,
        )
        cookies.upsertCookie(self.request, manager._cookieName, header)
        self._cookieSent = True

    def _track(self, d: Deferred[T]) -> Deferred[T]:
        """
        Have the response wait for C{d}, and fail with it on a database
        error, without touching the result the caller gets from C{d}.
        """
        done: Deferred[None] = Deferred()

        def mirror(result: Any) -> Any:
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(None)
            return result

        d.addBoth(mirror)
        self._pending.append(done)
        return d

    def _canSendCookie(self) -> bool:
        return not self.config.secureOnly or cookies.isSecureRequest(
            self.config, self.request
        )

    def _headersUnsent(self) -> bool:
        return not self.request.startedWriting  # type: ignore[attr-defined]


class _Pending:
    """
    The type of L{_PENDING}.
    """


_PENDING = _Pending()
"""
What L{Sessions._answered} returns for a L{Deferred} that has not fired.
"""


def _succeeded(d: Deferred[Any]) -> bool:
    """
    Tell whether a L{Deferred} has already succeeded, as the memory
    database's do: its result can then be used at once.
    """
    return d.called and not d.paused and not isinstance(d.result, Failure)


def _raceAgainst(d: Deferred[T], timeout: float, clock: IReactorTime) -> Deferred[T]:
    """
    A L{Deferred} with C{d}'s result, or failing with L{DatabaseError} after
    C{timeout} seconds.  C{d} itself is never cancelled: cancelling a
    command a client has already queued (txredisapi) could hand its reply to
    the next command.  A late result is dropped.
    """
    raced: Deferred[T] = Deferred()

    def late() -> None:
        raced.errback(
            DatabaseError(f"the session database did not answer in {timeout} s")
        )

    timer = clock.callLater(timeout, late)

    def settled(result: Any) -> None:
        if raced.called:
            return None
        timer.cancel()
        if isinstance(result, Failure):
            raced.errback(result)
        else:
            raced.callback(result)
        return None

    d.addBoth(settled)
    return raced


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
    state: _RequestSession | None = getattr(request, _STATE, None)
    session = None if state is None else state.current()
    if session is None:
        raise NoSessionError(
            "no session was started for this request: wrap the resource with "
            "Sessions.wrap, decorate the route with Sessions.withSession, or "
            "call Sessions.start first"
        )
    return session
