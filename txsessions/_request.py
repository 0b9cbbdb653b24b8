# -*- test-case-name: tests.test_manager,tests.test_web -*-
"""
The session of one request: attached to the request, loaded from its
cookie (L{txsessions._loading}), committed before the response goes out, and
its cookie, destroy and regenerate.

Every step runs once and answers at once when the database did (memory,
LMDB reads): L{DatabaseCalls.now} gives the result itself then, and a
L{Deferred} only when the database has yet to answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from . import cookies
from ._calls import allOf, isDeferred
from ._fields import ChangeParts, changesRecord
from ._hold import HeldResponse, markPrivateIfBare
from ._loading import cookieSessions, loadSession, newSession
from ._parts import Parts
from .errors import NoSessionError, SessionConflictError, SessionError
from .ids import redact
from .records import DestroyReason
from .session import (
    Session,
    addIncremented,
    markDestroyed,
    rekey,
    restart,
    setLifetime,
    storedKey,
    takeChangeParts,
)

_log = Logger()

T = TypeVar("T")

_STATE = "_txsessionsState"  # the request attribute holding its RequestSession
_CALLERS = (SessionConflictError, CancelledError)  # failures _track leaves alone


def attach(
    parts: Parts,
    request: IRequest,
    cookieOptions: Mapping[str, Any] | None = None,
    then: Callable[..., Any] | None = None,
    *args: Any,
) -> Session | Deferred[Any]:
    """
    Give C{request} its session: the session itself when it is at hand, or
    a L{Deferred} firing with it once the database answers.

    @param parts: the manager's parts.
    @param request: the request.
    @param cookieOptions: this request's cookie settings, if any.
    @param then: what to call, when the session comes later, with it (or
        the L{Failure} of why it could not be loaded) and C{args}: the
        L{Deferred} fires with what C{then} returns.  Not called for a
        session at hand.
    @raise DatabaseError: when the database failed at once.
    @raise SessionError: when another manager already gave the request one.
    """
    state: RequestSession | None = getattr(request, _STATE, None)
    if state is None:
        state = RequestSession(parts, request)
        setattr(request, _STATE, state)
    elif state.parts is not parts:
        raise SessionError(
            "this request already has a session from another Sessions manager"
        )
    if cookieOptions:
        state.config = parts.config.withCookieOptions(**cookieOptions)
    return state.session(then, args)


def requestSession(request: IRequest) -> RequestSession | None:
    """@return: the request session attached to C{request}, if any."""
    return getattr(request, _STATE, None)


def currentSession(request: IRequest) -> Session:
    """
    @return: the L{Session} started for C{request} by a L{txsessions.Sessions}.
    @raise NoSessionError: when none was started (or it is still loading).
    """
    state = requestSession(request)
    session = None if state is None else state.current()
    if session is None:
        raise NoSessionError(
            "no session was started for this request: wrap the resource with "
            "Sessions.wrap, decorate the route with Sessions.withSession, or "
            "call Sessions.start first"
        )
    return session


class RequestSession(HeldResponse):
    """
    The session of one request, and the response it holds back until the
    session is saved (the L{HeldResponse} it is: one object per request).

    @ivar parts: the manager's parts.
    @ivar request: the request.
    @ivar config: the configuration, with this request's cookie options.
    @ivar cookieReceived: whether the request carried a session cookie.
    """

    __slots__ = (
        "parts",
        "request",
        "config",
        "cookieReceived",
        "_session",
        "_loading",
        "_then",
        "_pending",
        "_cookieSent",
        "_conflict",
        "_renamed",
        "_over",
    )

    def __init__(self, parts: Parts, request: IRequest) -> None:
        self.parts = parts
        self.request = request
        self.config = parts.config
        self.cookieReceived = False
        self._session: Session | None = None
        self._loading: list[Deferred[Session]] | None = None
        # What the response waits for besides the commit's own save, if any.
        self._pending: list[Deferred[Any]] | None = None
        self._cookieSent = False
        self._conflict: SessionConflictError | None = None
        self._renamed = False  # whether a regenerate moved the session
        self._over = False  # whether the response has finished (see finished)
        HeldResponse.__init__(self, request)  # last: it may call finished()

    # Loading

    def session(
        self, then: Callable[..., Any] | None = None, args: tuple[Any, ...] = ()
    ) -> Session | Deferred[Any]:
        """
        @param then: as for L{attach}, with C{args}.
        @return: the current session, loading it first if need be: the
            session itself when it is at hand, or a L{Deferred} firing with
            it (or what C{then} made of it) once the database answers.
        @raise DatabaseError: when the database failed at once.
        """
        session = self._session
        if session is not None:
            if session.destroyed and self.config.allowReclaim:
                session = self._adopt(newSession(self.parts, self))
            return session
        if self._loading is not None:
            waiter: Deferred[Any] = Deferred()
            self._loading.append(waiter)
            return waiter if then is None else waiter.addBoth(then, *args)
        self.cookieReceived, found = cookieSessions(
            self.parts, self.config, self.request
        )
        self._then = then, args  # called by loaded, in the call's own callback
        loaded = loadSession(self.parts, self.config, self, found)
        if isinstance(loaded, Session):
            return self._adopt(loaded)
        self._loading = []
        return loaded

    def loaded(self, result: Session | Failure) -> Any:
        """
        Take the session loaded later, or why it could not be, and hand it
        to whoever asked for it meanwhile (see L{txsessions._loading.Loader}).

        @return: what the C{then} given to L{session} made of C{result};
            C{result} without one.
        """
        waiters, self._loading = self._loading or [], None
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
        else:
            self._adopt(result)
            for waiter in waiters:
                waiter.callback(result)
        then, args = self._then
        return result if then is None else then(result, *args)

    def _adopt(self, session: Session) -> Session:
        """Make C{session} the request's: finished if the response is (L{finished})."""
        self._session = session
        if self._over:
            session.changes.finish()
        return session

    # The owner of the session (see txsessions.session.SessionOwner)

    def current(self) -> Session | None:
        """@return: the session, once loaded."""
        return self._session

    def newID(self) -> tuple[str, str]:
        """@return: a new session id and its store key."""
        return self.parts.newID(self.request)

    def now(self) -> float:
        """@return: the manager's current time."""
        return self.parts.clock.seconds()

    def userAgent(self) -> str:
        """@return: the request's user agent (its first 512 characters), or C{""}."""
        agent: bytes | None = self.request.getHeader(b"user-agent")
        return "" if agent is None else agent.decode("utf-8", "replace")[:512]

    def renew(self, seconds: float, create: bool) -> None:
        """
        Give the session a new lifetime C{seconds} from now (0: none, or
        the idle timeout's), saved with it and sent in its cookie.

        @param create: whether to create a session started in this request
            that nobody wrote to; if not, it is created with the new
            lifetime only when something is written to it.
        """
        session = self._session
        assert session is not None
        lifetime = self.parts.policy.renewed(session.lifetime, self.now(), seconds)
        setLifetime(session, lifetime, create)

    def destroy(self, session: Session) -> Deferred[None]:
        """
        Destroy C{session}: remove it from the database and have the client
        forget its cookie.
        """
        key = storedKey(session)
        markDestroyed(session)
        self._forgetCookie()
        if key is None:
            return succeed(None)
        parts = self.parts
        destroying = parts.calls.run(
            parts.database.destroy, key, DestroyReason.destroyed
        )
        return self._track(destroying).addCallback(lambda _: None)

    def _forgetCookie(self) -> None:
        """Have the client forget its session cookie, if it has one."""
        if self._headersUnsent() and (self.cookieReceived or self._cookieSent):
            cookies.upsertCookie(
                self.request,
                self.parts.cookieName,
                cookies.deletionCookie(self.config, self.request),
            )

    def regenerate(self, session: Session) -> Deferred[None]:
        """
        Give C{session} a new id, keeping its data; the old id is dead once
        the returned L{Deferred} fires, and the response carries the new one.

        When the old id is gone by the time the database renames it (another
        request regenerated or destroyed the session first: a double-clicked
        login button), this request carries on with a new session holding
        only what this request wrote to it, under the new id.
        """
        session.changes.checkAlive()
        if not self.nothingWritten():  # the new id's cookie could not be sent
            raise SessionError("no regenerate once the response headers are sent")
        oldKey = storedKey(session)
        sessionID, key = self.newID()
        rekey(session, sessionID, key)
        if oldKey is None:
            return succeed(None)
        session.changes.cookieDirty = True
        parts = self.parts
        renaming = parts.calls.run(parts.database.rename, oldKey, key)

        def renamed(moved: bool) -> None:
            if not moved:
                _log.info(
                    "session {key} was regenerated or destroyed by another "
                    "request first; this request carries on with a new session",
                    key=redact(oldKey),
                )
                restart(session, parts.policy.new(self.now()))
                return
            self._renamed = True
            if parts.config.logSessionEvents:
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
        flushed = self._flush(session, not self._headersUnsent(), {key: n})
        if flushed is None:
            raise SessionError(
                "a new session cannot be created once the response headers are "
                "sent, or over plain HTTP when its cookie must be Secure"
            )
        saving: Deferred[Mapping[str, int] | None] = (
            flushed if isinstance(flushed, Deferred) else succeed(flushed)
        )

        def incremented(values: Mapping[str, int] | None) -> int:
            assert values is not None
            addIncremented(session, values)
            return values[key]

        return self._track(saving).addCallback(incremented)

    # Saving

    def commit(self, headersSent: bool) -> Deferred[None] | None:
        """
        Save the session before the response goes on: called by
        L{HeldResponse} before the headers are written (C{headersSent} false)
        and again when the response finishes.

        @return: C{None} when there is nothing to wait for, or a L{Deferred}
            that fires once everything is saved, and fails with
            L{DatabaseError} when the database failed or with
            L{SessionConflictError} when another request regenerated or
            destroyed the session first, or when the response is a 500
            from a handler that let such a conflict escape (it is answered
            as a conflict found here: a 409).
        """
        waits = self._pending or []
        session = self._session
        request: Any = self.request
        if session is not None and request.code < 500:
            if not headersSent:
                if not markPrivateIfBare(request.responseHeaders):
                    cookies.markPrivate(request)
            changes = session.changes
            # ChangeSet.pending, inline: this runs on every request.
            pending = not changes.destroyed and bool(
                changes.updated
                or changes.deleted
                or changes.cleared
                or changes.lifetimeChanged
                or changes.readFlashes
            )
            if pending or changes.cookieDirty:
                saving = self._flush(session, headersSent, pending=pending)
                # What a database answering at once saved is a dict.
                if type(saving) is not dict and isDeferred(saving):
                    # What it fires with is of no use: allOf drops it.
                    waits.append(saving)
                    if len(waits) == 1:
                        # The save alone: it is _unsaved when it fails.
                        self._pending = None
                        return waits[0]
        elif self._conflict is not None and not headersSent:
            # The handler let a conflict (or the destroyed session it left)
            # escape, and the response is a 500: answer as for a conflict
            # found here, a 409 without a cookie.
            waits.append(fail(self._conflict))
        elif self._renamed and not (
            headersSent or session is None or session.destroyed
        ):
            # A 5xx: nothing of the request is saved but a regenerate, done
            # already, so the client gets the new id.
            self._sendCookie(session)
            cookies.markPrivate(request)
        if not waits:
            return None
        self._pending = None
        # One wait (a save) is waited for as it is: what it fires with is
        # dropped by whoever waits (the held response, or a later commit).
        waiting = waits[0] if len(waits) == 1 else allOf(waits)
        return waiting.addErrback(self._unsaved)

    def finished(self) -> None:
        """See L{HeldResponse.finished}: the session takes no more changes."""
        self._over = True
        if self._session is not None:
            self._session.changes.finish()

    def cookiesKept(self) -> list[bytes]:
        """
        See L{HeldResponse.cookiesKept}: after a regenerate, the new id's
        cookie, as for a 5xx (see L{commit}); the rename has landed, so the
        old id the client holds is dead, and the new one holds its data.
        """
        session, config = self._session, self.config
        if not self._renamed or session is None or session.destroyed:
            return []
        secure = not config.secureOnly or cookies.isSecureRequest(config, self.request)
        return [self._cookieHeader(session)] if secure else []

    def _unsaved(self, failure: Failure) -> Failure:
        """A save failed: no cookie goes out for it."""
        # Once the headers are sent, Twisted reads the cookies no more.
        cookies.removeCookie(self.request, self.parts.cookieName)
        return failure

    def _flush(
        self,
        session: Session,
        headersSent: bool,
        increments: Mapping[str, int] | None = None,
        pending: bool | None = None,
    ) -> Deferred[Mapping[str, int] | None] | Mapping[str, int] | None:
        """
        Save what changed in C{session} (with C{increments}) and send its
        cookie when it is new, has a new lifetime, a new id, or a cookie due
        for re-issue.

        @param pending: whether the caller found changes pending; C{None}:
            they are looked for.
        @return: C{None} when there was nothing to save (or a new session
            could not be given its cookie, and was dropped); the increments'
            values when the database saved at once; else the save.
        """
        changes = session.changes
        changed = bool(increments) or (
            changes.pending() if pending is None else pending
        )
        creating = changed and not changes.stored
        if creating:
            changes.cookieDirty = True
        config = self.config
        if creating and (
            headersSent
            or (config.secureOnly and not cookies.isSecureRequest(config, self.request))
        ):
            _log.error(
                "a new session was not saved: its cookie could not be sent "
                "(the response headers were sent, or the cookie must be Secure "
                "and the request came over plain HTTP)"
            )
            markDestroyed(session)
            return None
        saving = None
        cookieValue = None
        if changed:
            key = session.key
            if creating:
                cookieValue = (
                    session.id
                    if config.encoding is None
                    else self._cookieValue(session)
                )
            own = changes.ownWrites is not None and changes.onlyOwn(session, increments)
            saving = self._save(session, key, takeChangeParts(session, increments), own)
        if changes.stored and changes.cookieDirty:
            if headersSent:
                _log.warn(
                    "a session's cookie changed after the response headers were sent"
                )
            elif not config.secureOnly or cookies.isSecureRequest(config, self.request):
                self._sendCookie(session, cookieValue)
            changes.cookieDirty = False
        return saving

    def _save(
        self, session: Session, key: str, changes: ChangeParts, own: bool = False
    ) -> Deferred[Mapping[str, int] | None] | Mapping[str, int]:
        """
        @param own: whether C{changes} are only what the session wrote
            itself on loading (C{ChangeSet.onlyOwn}).
        @return: the increments' values when the database saved at once (no
            L{Deferred} on the way), or else the save.
        """
        parts = self.parts
        create = changes[0]
        started = perf_counter()
        try:
            atOnce = parts.saveAtOnce
            if atOnce is not None:
                try:
                    result = atOnce(key, *changes)
                except Exception as e:
                    raise parts.calls.failed(e, "save") from e
                parts.saveLatency.add(perf_counter() - started)
                if result is not None and not create:
                    saved: Mapping[str, int] = result  # _saved, inline
                    return saved
                return self._saved(session, key, create, result, own)
            try:
                inParts = parts.saveParts
                if inParts is None:
                    saving = parts.database.save(key, changesRecord(changes))
                else:
                    saving = inParts(key, *changes)
            except Exception as e:
                raise parts.calls.failed(e, "save") from e
            answer = parts.calls.now(
                saving, "save", started, self._savedLater, session, key, create, own
            )
            if isDeferred(answer):
                return answer
            return self._saved(session, key, create, answer, own)
        except Exception:
            return fail(self._unsaved(Failure()))

    def _savedLater(
        self, result: Any, session: Session, key: str, create: bool, own: bool
    ) -> Any:
        """L{_saved}, for a save answered later; L{_unsaved} for a failure."""
        if isinstance(result, Failure):
            return self._unsaved(result)
        return self._saved(session, key, create, result, own)

    def _saved(
        self,
        session: Session,
        key: str,
        create: bool,
        result: Mapping[str, int] | None,
        own: bool = False,
    ) -> Mapping[str, int]:
        """
        What the database answered to a save.

        @param own: whether the save held only what the session wrote itself
            on loading: then the session's end lost nothing, and is no conflict.
        @raise SessionConflictError: when it no longer held the session.
        """
        if result is None:
            # No cookie goes out for it; the client's is left alone (it may
            # name the session's new id by now).
            markDestroyed(session)
            cookies.removeCookie(self.request, self.parts.cookieName)
            if own:  # the request carries on without it
                return {}
            _log.warn(
                "session {key} was regenerated or destroyed by another "
                "request; this request's changes to it could not be saved",
                key=redact(key),
                security="conflict",
            )
            self._conflict = SessionConflictError(
                "the session was regenerated or destroyed by another request "
                "while this one was changing it"
            )
            raise self._conflict
        if create:
            self.parts.created(key)
        return result

    def _cookieValue(self, session: Session) -> str:
        encoding = self.config.encoding
        if encoding is None:
            return session.id
        return str(encoding.encode(self.config.cookie, session.id))

    def _sendCookie(self, session: Session, value: str | None = None) -> None:
        header = self._cookieHeader(session, value)
        cookies.upsertCookie(self.request, self.parts.cookieName, header)
        self._cookieSent = True

    def _cookieHeader(self, session: Session, value: str | None = None) -> bytes:
        now, expiresAt = self.parts.clock.seconds(), session.expiresAt
        config = self.config
        value = self._cookieValue(session) if value is None else value
        left = None if expiresAt is None else expiresAt - now
        # Without an encoding, the value is the id itself.
        return cookies.sessionCookie(
            config, self.request, value, left, now, config.encoding is None
        )

    def _track(self, d: Deferred[T]) -> Deferred[T]:
        """
        Have the response wait for C{d}, and fail with it on a database
        error (a refused counter too), without touching the result the
        caller gets from C{d}.  A L{SessionConflictError} is the caller's, a
        cancellation (the client went away) no fault of anyone's.  Once the
        response has finished, there is nothing left to fail.
        """
        if self._over:
            return d
        done: Deferred[None] = Deferred()

        def mirror(result: Any) -> Any:
            if isinstance(result, Failure) and not result.check(*_CALLERS):
                done.errback(result)
            else:
                done.callback(None)
            return result

        self._pending = [*(self._pending or ()), done]
        return d.addBoth(mirror)

    def _headersUnsent(self) -> bool:
        return not self.request.startedWriting  # type: ignore[attr-defined]
