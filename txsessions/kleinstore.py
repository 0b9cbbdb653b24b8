# -*- test-case-name: tests.test_kleinstore -*-
"""
Klein's own session API on a txsessions database.

L{KleinSessionStore} is a C{klein.interfaces.ISessionStore}: hand it to
Klein's C{SessionProcurer}, and Klein apps written with
C{@requirer.require(...)} get txsessions' databases and expiry.  Their
sessions authorize L{ISessionValues}, the session's values, written through
to the database as they change::

    store = KleinSessionStore(sessions)
    procurer = SessionProcurer(store)

    @requirer.prerequisite([ISession])
    def procure(request):
        return procurer.procureSession(request)

    @requirer.require(app.route("/"), values=Authorization(ISessionValues))
    async def home(values):
        return str(await values.increment("hits"))

    answerUnavailable(app)  # a 503 when the database fails, not a 500

Routes that want objects of their own through the session
(C{Authorization(IUser)}) get them from the store's authorizers, as from
Klein's C{MemorySessionStore.fromAuthorizers}: each is a L{Authorizer},
called with the interface asked for, the session and its values, and
answering a provider (or a Deferred or coroutine of one), or C{None}::

    def user(interface, session, values):
        name = values.get("user")
        return None if name is None else User(name)

    store = KleinSessionStore(sessions, authorizers=[user])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from klein import Klein
from klein.interfaces import ISession, ISessionStore, NoSuchSession, SessionMechanism
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from zope.interface import Interface, implementer

from ._hold import failedBody
from ._parts import Parts
from .cookies import MAX_CANDIDATES
from .errors import DatabaseError, SessionConflictError
from .ids import isWellFormedID, storeKey
from .interfaces import ISessionValues
from .manager import Sessions
from .records import Lifetime, SessionChanges
from .session import splitFields
from .values import checkIncrement, checkKey, encodeValue

_log = Logger()

Authorizer = Callable[[type[Interface], ISession, Any], Any]
"""
A function from an interface, a session and its values (an
L{ISessionValues}) to a provider of the
interface (or a Deferred or coroutine of one), or C{None} to grant none.  One
decorated with Klein's C{declareMemoryAuthorizer} is asked for its interface
only.
"""

CONFIDENTIAL = "\x00kc"
"""
The stored field that says whether a Klein session was made over TLS.
"""


class _DestroyedMeanwhile(SessionConflictError, NoSuchSession):
    """
    A Klein session's save found it gone: another request destroyed (or
    regenerated) it meanwhile.  Klein's C{NoSuchSession}, and the conflict
    L{answerUnavailable} answers 409 for, as C{withSession} does.
    """


@implementer(ISessionValues)
class SessionValues:
    """
    L{ISessionValues} for one Klein session.
    """

    def __init__(self, parts: Parts, key: str, values: dict[str, Any]) -> None:
        self._parts = parts
        self._key = key
        self._values = values

    def get(self, key: str, default: Any = None) -> Any:
        """
        See L{ISessionValues.get}.
        """
        return self._values.get(key, default)

    def getAll(self) -> dict[str, Any]:
        """
        See L{ISessionValues.getAll}.
        """
        return dict(self._values)

    def set(self, key: str, value: Any) -> Deferred[None]:
        """
        See L{ISessionValues.set}.
        """
        text = encodeValue(key, value)

        def saved(_: object) -> None:
            self._values[key] = value

        return self._save(SessionChanges(updated={key: text})).addCallback(saved)

    def delete(self, key: str) -> Deferred[bool]:
        """
        See L{ISessionValues.delete}.

        @raise ValueNotSerializable: for a key L{set} refuses.
        """
        checkKey(key)
        existed = key in self._values

        def saved(_: object) -> bool:
            self._values.pop(key, None)
            return existed

        return self._save(SessionChanges(deleted=frozenset({key}))).addCallback(saved)

    def increment(self, key: str, n: int = 1) -> Deferred[int]:
        """
        See L{ISessionValues.increment}.

        @raise TypeError: when C{n} is not an C{int} (a C{bool} is not).
        @raise ValueError: when it is not a 64-bit integer.
        """
        checkIncrement(key, n)

        def incremented(values: Mapping[str, int]) -> int:
            self._values.update(values)
            return values[key]

        return self._save(SessionChanges(increments={key: n})).addCallback(incremented)

    def _save(self, changes: SessionChanges) -> Deferred[Mapping[str, int]]:
        def saved(result: Mapping[str, int] | None) -> Mapping[str, int]:
            if result is None:
                raise _DestroyedMeanwhile("the session was destroyed")
            return result

        parts = self._parts
        saving = parts.calls.run(parts.database.save, self._key, changes, kind="save")
        return saving.addCallback(saved)


@implementer(ISession)
class KleinSession:
    """
    A Klein C{ISession} kept in a txsessions database.

    @ivar identifier: the session id (the secret the client holds).
    @ivar isConfidential: whether it was made over TLS.
    @ivar authenticatedBy: how the client presented it.
    """

    def __init__(
        self,
        identifier: str,
        isConfidential: bool,
        authenticatedBy: SessionMechanism,
        values: SessionValues,
        authorizers: Sequence[Authorizer] = (),
    ) -> None:
        self.identifier = identifier
        self.isConfidential = isConfidential
        self.authenticatedBy = authenticatedBy
        self._values = values
        self._authorizers = authorizers

    def authorize(
        self, interfaces: Iterable[type[Interface]]
    ) -> Deferred[dict[Any, Any]]:
        """
        Klein's authorization: L{ISessionValues} is granted, and any other
        interface one of the store's authorizers answers for (the first
        answer that is not C{None}).
        """
        asked = list(interfaces)
        granted: dict[Any, Any] = {
            i: self._values for i in asked if i is ISessionValues
        }
        if not self._authorizers:
            return succeed(granted)

        async def authorize() -> dict[Any, Any]:
            for interface in asked:
                if interface is not ISessionValues:
                    provider = await self._authorizeOne(interface)
                    if provider is not None:
                        granted[interface] = provider
            return granted

        return Deferred.fromCoroutine(authorize())

    async def _authorizeOne(self, interface: type[Interface]) -> Any:
        for authorizer in self._authorizers:
            declared = getattr(authorizer, "__memoryAuthInterface__", interface)
            if declared is not interface:
                continue
            provider = authorizer(interface, self, self._values)
            if isinstance(provider, Deferred) or inspect.isawaitable(provider):
                provider = await provider
            if provider is not None:
                return provider
        return None


@implementer(ISessionStore)
class KleinSessionStore:
    """
    Klein's C{ISessionStore} on the database of a L{Sessions} manager, with
    its lifetime rules (C{expires}, C{idleTimeout} pushed back on use,
    C{absoluteTimeout}), its session id generator (called with C{None}: Klein
    makes sessions without a request) and its destroy listeners.
    """

    def __init__(
        self, sessions: Sessions, authorizers: Iterable[Authorizer] = ()
    ) -> None:
        """
        @param sessions: the manager whose database and lifetime to use.
        @param authorizers: what grants the interfaces other than
            L{ISessionValues} (see L{Authorizer}), asked in this order.
        """
        self._sessions = sessions
        self._authorizers = tuple(authorizers)

    def newSession(
        self, isConfidential: bool, authenticatedBy: SessionMechanism
    ) -> Deferred[ISession]:
        """
        Create and store a session.
        """
        parts = self._sessions.parts
        identifier, key = parts.newID(None)  # type: ignore[arg-type]
        changes = SessionChanges(
            create=True,
            lifetime=parts.policy.new(parts.clock.seconds()),
            updated={CONFIDENTIAL: "true" if isConfidential else "false"},
        )
        values = SessionValues(parts, key, {})

        def created(_: object) -> ISession:
            parts.created(key)
            return KleinSession(
                identifier, isConfidential, authenticatedBy, values, self._authorizers
            )

        saving = parts.calls.run(parts.database.save, key, changes, kind="save")
        return saving.addCallback(created)

    def loadSession(
        self, identifier: str, isConfidential: bool, authenticatedBy: SessionMechanism
    ) -> Deferred[ISession]:
        """
        Load a live session made with the same confidentiality, pushing back
        its end under C{idleTimeout}.  A session whose record cannot be
        decoded is no session.
        """
        parts = self._sessions.parts

        async def load() -> ISession:
            if not isWellFormedID(identifier):
                raise NoSuchSession("malformed session identifier")
            key = storeKey(identifier)
            stored = await parts.calls.run(parts.database.load, key, kind="load")
            now = parts.clock.seconds()
            if stored is None or parts.policy.hasEnded(stored.lifetime, now):
                raise NoSuchSession("no such session")
            confidential = stored.values.get(CONFIDENTIAL) == "true"
            if confidential != isConfidential:
                raise NoSuchSession("the session was made over another transport")
            try:
                values, _, _ = splitFields(stored.values)
            except Exception:
                _log.warn(
                    "a Klein session holds data that cannot be decoded; ignored",
                    security="corrupt",
                )
                raise NoSuchSession(
                    "the session holds data that cannot be decoded"
                ) from None
            touched = parts.policy.touched(stored.lifetime, now)
            if touched is not None:
                await self._pushBack(parts, key, touched)
            return KleinSession(
                identifier,
                isConfidential,
                authenticatedBy,
                SessionValues(parts, key, values),
                self._authorizers,
            )

        return Deferred.fromCoroutine(load())

    async def _pushBack(self, parts: Parts, key: str, lifetime: Lifetime) -> None:
        saved = await parts.calls.run(
            parts.database.save, key, SessionChanges(lifetime=lifetime), kind="save"
        )
        if saved is None:
            raise NoSuchSession("no such session")

    def sentInsecurely(self, identifiers: Sequence[str | bytes]) -> None:
        """
        Destroy the confidential sessions whose identifiers went over plain
        HTTP: they are no longer secret.  (Klein passes every token an
        insecure request carried, its insecure session's included.)
        """

        async def destroy(identifier: str) -> None:
            key = storeKey(identifier)
            parts = self._sessions.parts
            stored = await parts.calls.run(parts.database.load, key, kind="load")
            if stored is not None and stored.values.get(CONFIDENTIAL) == "true":
                await self._sessions.destroyByKey(key)

        distinct: list[str] = []
        for identifier in identifiers:
            if isinstance(identifier, bytes):
                identifier = identifier.decode("ascii", "replace")
            if isWellFormedID(identifier) and identifier not in distinct:
                distinct.append(identifier)
        for identifier in distinct[:MAX_CANDIDATES]:
            d = Deferred.fromCoroutine(destroy(identifier))
            d.addErrback(lambda f: _log.failure("sentInsecurely failed", failure=f))


def answerUnavailable(app: Klein) -> None:
    """
    Have C{app} answer 503 (409 for a conflict), without a cookie, as
    L{Sessions.withSession<txsessions.Sessions.withSession>} does, when its
    sessions' database fails: full (C{maxSessions}), down, or too slow.
    Klein's session procurer passes the store's L{DatabaseError} on as it
    is, which Klein would answer with its 500 "Processing Failed" page.

    @param app: the Klein app whose routes use a L{KleinSessionStore}.
    """

    @app.handle_errors(DatabaseError, SessionConflictError)
    def unavailable(request: IRequest, failure: Failure) -> bytes:
        return failedBody(failure, request)
