# -*- test-case-name: tests.test_manager -*-
"""
L{Sessions}, the manager: it starts a request's session from its cookie,
saves it before the response completes, destroys sessions and tells the
destroy listeners.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from ._owners import destroyOwner, ownerIndex
from ._parts import Parts
from ._request import attach, currentSession, requestSession
from .config import Config, checkCookieOutlives, toSeconds
from .db.memory import MemoryDatabase
from .errors import DatabaseError, SessionError
from .ids import isWellFormedID, redact, storeKey
from .interfaces import DestroyListener, IDatabase
from .listeners import Listeners
from .metrics import Metrics
from .records import DestroyReason, SessionInfo
from .session import Session, storedKey
from .web import SessionResource, withSession

_log = Logger()


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
        @raise TypeError: when C{config} is no L{Config}, or C{database} no
            L{IDatabase} (a URL is opened with L{txsessions.db.openDatabase}).
        """
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {type(config).__name__}")
        if database is not None:
            _checkDatabase(database)
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        if database is None:
            database = MemoryDatabase(clock)
        self.config = config if config is not None else Config()
        self._listeners = Listeners()
        self.metrics = Metrics()
        "What this manager counts: see L{txsessions.metrics.Metrics}."
        self.parts = Parts(self.config, clock, database, self.metrics)
        """
        The parts the request path works with (internal: for
        L{txsessions.web} and L{txsessions.kleinstore}).
        """
        self._unlisten = database.listen(self._destroyed)
        self._shareDeadline(database)

    @property
    def database(self) -> IDatabase:
        """
        The database sessions are kept in.
        """
        return self.parts.database

    def useDatabase(self, database: IDatabase) -> None:
        """
        Keep sessions in another database from now on.  Sessions in the old
        one are not moved, and the old one is not closed.

        @param database: the new database.
        @raise TypeError: when it is no L{IDatabase}.
        """
        _checkDatabase(database)
        self._unlisten()
        self.parts.use(database)
        self._unlisten = database.listen(self._destroyed)
        self._shareDeadline(database)

    def _shareDeadline(self, database: IDatabase) -> None:
        """
        Give a database that can refuse a late write (SQLite, LMDB, Redis:
        their C{useDeadline}) this manager's C{databaseTimeout}, so that a
        request answered 503 never has its change land afterwards, however
        the database was built.
        """
        useDeadline = getattr(database, "useDeadline", None)
        if useDeadline is not None:
            useDeadline(self.config.databaseTimeout)

    def onDestroy(self, listener: DestroyListener) -> Callable[[], None]:
        """
        Call C{listener} with the store key (L{Session.key}) and a
        L{DestroyReason} whenever a session is destroyed or expires.  A
        listener that raises is logged and the others still run.

        @param listener: a callable taking C{(key, reason)}.
        @return: a callable that removes the listener.
        """
        return self._listeners.add(listener)

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
        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing with the
            L{Session}, or failing with
            L{DatabaseError} when the database failed.
        @raise TypeError: for an option that is not a cookie setting, or a
            C{request} that is no request.
        @raise ValueError: for an invalid setting.
        @raise SessionError: when another manager started the request's
            session.
        """
        self._checkRequest(request)
        try:
            loaded = attach(self.parts, request, cookieOptions)
        except DatabaseError:
            return fail()
        return succeed(loaded) if isinstance(loaded, Session) else loaded

    def destroy(self, request: IRequest) -> Deferred[None]:
        """
        Destroy the request's session, if it has a live one, and make the
        client forget its cookie.

        @param request: the request.
        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing once the session
            is removed.
        @raise TypeError: when C{request} is no request.
        @raise SessionError: when another manager started its session.
        """
        self._checkRequest(request)

        async def destroy() -> None:
            session = await self.start(request)
            await session.destroy()

        return Deferred.fromCoroutine(destroy())

    def destroyByID(self, sessionID: str) -> Deferred[bool]:
        """
        Destroy the session with the given id, wherever it was last used.

        @param sessionID: a session id (L{Session.id}).
        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing with whether
            there was such a session.
        """
        _checkText("sessionID", sessionID)
        if not isWellFormedID(sessionID):
            return succeed(False)
        return self.destroyByKey(storeKey(sessionID))

    def destroyByKey(self, key: str) -> Deferred[bool]:
        """
        Destroy the session with the given store key, as destroy listeners
        receive it.

        @param key: a store key (L{Session.key}).
        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing with whether
            there was such a session.
        """
        _checkText("key", key)
        return self.parts.calls.run(
            self.database.destroy, key, DestroyReason.destroyByID
        )

    def destroyAll(self) -> Deferred[int]:
        """
        Destroy every session in the database.

        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing with how many
            there were.
        """
        return self.parts.calls.run(self.database.destroyAll, DestroyReason.destroyAll)

    def sessionsOf(
        self, owner: str, current: IRequest | None = None
    ) -> Deferred[list[SessionInfo]]:
        """
        List a user's live sessions (those given the owner with
        L{Session.setOwner}): a "where you're logged in" page.  Each
        L{SessionInfo} has the session's store-key (never its id), its
        lifetime, its C{lastSeen} time (to within
        C{Config.lastSeenInterval}) and C{userAgent}, and C{current} true
        for the session of C{current}.  The database looks the owner up in
        an index: no walk of the store, one round trip on Redis.

        @param owner: the user.
        @param current: the request whose session to mark C{current}: one
            whose session was started (L{withSession}, L{wrap}, L{start}).
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing
            with the sessions, the most recently seen first; failing with
            C{NotImplementedError} when the database keeps no owner index.
        """
        _checkText("owner", owner)
        mine = None if current is None else self._startedKey(current, "current")

        def marked(found: list[SessionInfo]) -> list[SessionInfo]:
            listed = [
                attrs.evolve(info, current=True) if info.key == mine else info
                for info in found
            ]
            listed.sort(key=lambda info: -(info.lastSeen or 0.0))
            return listed

        try:
            sessionsOf = ownerIndex(self.database)
        except NotImplementedError:
            return fail()
        return self.parts.calls.run(sessionsOf, owner).addCallback(marked)

    def destroyOwner(self, owner: str, keep: IRequest | None = None) -> Deferred[int]:
        """
        End every session of a user ("log out everywhere", as when the
        password changes), but for the session of C{keep} if given ("log
        out the others").  Destroy listeners hear of each, in every process,
        with L{DestroyReason.owner}.  To end them all from one of the user's
        own requests, spare its session with C{keep} and end it with
        L{Session.destroy}: ended under the request, it would be a conflict
        for it (a change to it answered 409).

        @param owner: the user.
        @param keep: the request whose session to spare: one whose
            session was started (L{withSession}, L{wrap}, L{start}).
        @return: a L{Deferred <twisted.internet.defer.Deferred>} firing
            with how many sessions ended; failing with C{NotImplementedError}
            when the database keeps no owner index.
        @raise TypeError: when C{keep} is no request (a L{Session}, say).
        @raise ValueError: when no session was started for it: which one to
            spare is not known.
        """
        _checkText("owner", owner)
        spared = None if keep is None else self._startedKey(keep, "keep")
        return Deferred.fromCoroutine(
            destroyOwner(self.database, owner, spared, self.parts.calls.run)
        )

    def count(self) -> Deferred[int]:
        """
        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing with the number
            of live sessions.
        """
        return self.parts.calls.run(self.database.count)

    def wrap(self, resource: IResource) -> IResource:
        """
        Give every request under C{resource} a session, started before it
        renders and saved before its response completes.  Inside,
        L{txsessions.get} returns it.

        @param resource: any resource, a Klein app's C{resource()} included.
        @return: the wrapping resource.
        @raise TypeError: when C{resource} is no resource: it neither
            provides C{IResource} nor has its C{render} and
            C{getChildWithDefault} (a Klein app itself, for one, rather than
            its C{resource()}).
        """
        if not (
            IResource.providedBy(resource)
            or (
                callable(getattr(resource, "render", None))
                and callable(getattr(resource, "getChildWithDefault", None))
            )
        ):
            hint = (
                " (for a Klein app, app.resource())"
                if callable(getattr(resource, "resource", None))
                else ""
            )
            raise TypeError(
                f"Sessions.wrap takes a resource{hint}, not {type(resource).__name__}"
            )
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
        @raise TypeError: when C{handler} cannot be called.
        """
        if not callable(handler):
            raise TypeError(
                "Sessions.withSession takes a route handler, "
                f"not {type(handler).__name__}"
            )
        return withSession(self, handler)

    def shiftExpiration(self, request: IRequest) -> Deferred[None]:
        """
        Restart the request's session lifetime at C{config.expires} (or, for
        an idle-timed session, C{config.idleTimeout}) from now and re-send
        its cookie (Iris: C{ShiftExpiration}); called on every request, it
        makes expiry sliding.  Unlike L{updateExpiration}, it creates no
        session: a new session nobody wrote to stays unstored (and costs
        nothing), and is created with the shifted lifetime if written to.

        @param request: the request.
        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing once the session
            is started; the new
            lifetime is saved with the session.
        @raise TypeError: when C{request} is no request.
        @raise SessionError: when another manager started its session.
        """
        return self._renew(
            request, self.config.expires or self.config.idleTimeout, create=False
        )

    def updateExpiration(
        self, request: IRequest, expires: float | timedelta
    ) -> Deferred[None]:
        """
        Give the request's session a new lifetime from now, and re-send its
        cookie with it, replacing any cookie already in this response (Iris:
        C{UpdateExpiration}).  Unlike Iris, a session started in this same
        request can be given one too ("remember me" at login): it is stored
        and given its cookie even when nothing else was written to it.

        @param request: the request.
        @param expires: seconds or a C{timedelta}; 0 for no server-side
            lifetime and a cookie that lasts until the browser closes, or,
            with an C{idleTimeout}, for the idle lifetime (no session goes
            without it).
        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing once the session
            is started; the new
            lifetime is saved with the session.
        @raise ValueError: when C{expires} is not a lifetime, or is longer
            than the cookie encoding's values last (its C{maxAge}).
        @raise TypeError: when C{request} is no request.
        @raise SessionError: when another manager started its session.
        """
        seconds = toSeconds(expires)
        checkCookieOutlives(self.config, seconds)
        return self._renew(request, seconds, create=True)

    def _renew(self, request: IRequest, seconds: float, create: bool) -> Deferred[None]:
        self._checkRequest(request)

        async def update() -> None:
            await self.start(request)
            state = requestSession(request)
            if state is None or state.current() is None:
                currentSession(request)  # raises NoSessionError
            else:
                state.renew(seconds, create)

        return Deferred.fromCoroutine(update())

    def _checkRequest(self, request: object) -> bool:
        """
        @return: whether a session was started for C{request}.
        @raise TypeError: when C{request} is no request (a L{Session}, say).
        @raise SessionError: when another manager started its session.
        """
        if not IRequest.providedBy(request):
            raise TypeError(
                f"expected the request (an IRequest), not {type(request).__name__}"
            )
        state = requestSession(request)
        if state is not None and state.parts is not self.parts:
            raise SessionError(
                "this request already has a session from another Sessions manager"
            )
        return state is not None

    def _startedKey(self, request: object, name: str) -> str | None:
        """
        @return: the store key of the session started for C{request}, once
            stored and while not destroyed; else C{None}.
        @raise TypeError: when C{request} is no request.
        @raise ValueError: when no session was started for it.
        """
        if not self._checkRequest(request):
            raise ValueError(
                f"{name} must be a request whose session was started "
                "(withSession, wrap or start)"
            )
        state = requestSession(cast(IRequest, request))
        session = None if state is None else state.current()
        if session is None or session.destroyed:
            return None
        return storedKey(session)

    def close(self) -> Deferred[None]:
        """
        Close the database (its timers and connections).

        @return: a L{Deferred<twisted.internet.defer.Deferred>} firing once it is
            closed.
        """
        return self.database.close()

    def _destroyed(self, key: str, reason: DestroyReason) -> None:
        """
        Count, log (with C{logSessionEvents}) and announce a session the
        database destroyed.
        """
        self.metrics.destroyed[reason.value] += 1
        if self.config.logSessionEvents:
            _log.info(
                "session {key} destroyed ({reason})",
                key=redact(key),
                reason=reason.value,
                sessionEvent="destroyed",
            )
        self._listeners.tell(key, reason)


def _checkText(name: str, value: object) -> None:
    """
    @raise TypeError: when C{value} is not a C{str} (C{bytes} from
        C{request.args}, say, which would name no session).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _checkDatabase(database: object) -> None:
    """
    @raise TypeError: when C{database} does not provide L{IDatabase} (a URL
        is opened with L{txsessions.db.openDatabase}).
    """
    if not IDatabase.providedBy(database):
        raise TypeError(
            f"database must provide IDatabase, not be a {type(database).__name__}"
            " (open a URL with txsessions.db.openDatabase)"
        )
