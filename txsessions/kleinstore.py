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

from klein.interfaces import ISession, ISessionStore, NoSuchSession, SessionMechanism
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import Interface, implementer

from .cookies import MAX_CANDIDATES
from .ids import generateSessionID, isWellFormedID, storeKey
from .interfaces import ISessionValues
from .manager import Sessions
from .records import SessionChanges
from .session import splitFields
from .values import encodeValue

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


@implementer(ISessionValues)
class SessionValues:
    """
    L{ISessionValues} for one Klein session.
    """

    def __init__(self, sessions: Sessions, key: str, values: dict[str, Any]) -> None:
        self._sessions = sessions
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
        self._values[key] = value
        return self._save(SessionChanges(updated={key: text})).addCallback(
            lambda _: None
        )

    def delete(self, key: str) -> Deferred[bool]:
        """
        See L{ISessionValues.delete}.
        """
        existed = self._values.pop(key, self) is not self
        saving = self._save(SessionChanges(deleted=frozenset({key})))
        return saving.addCallback(lambda _: existed)

    def increment(self, key: str, n: int = 1) -> Deferred[int]:
        """
        See L{ISessionValues.increment}.
        """
        encodeValue(key, n)

        def incremented(values: Mapping[str, int]) -> int:
            self._values.update(values)
            return values[key]

        return self._save(SessionChanges(increments={key: n})).addCallback(incremented)

    def _save(self, changes: SessionChanges) -> Deferred[Mapping[str, int]]:
        def saved(result: Mapping[str, int] | None) -> Mapping[str, int]:
            if result is None:
                raise NoSuchSession("the session was destroyed")
            return result

        database = self._sessions.database
        return self._sessions._call(database.save(self._key, changes)).addCallback(
            saved
        )


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
    its lifetime (C{config.expires}) and its destroy listeners.
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
        identifier = generateSessionID()
        key = storeKey(identifier)
        changes = SessionChanges(
            create=True,
            lifetime=self._sessions._newLifetime(),
            updated={CONFIDENTIAL: "true" if isConfidential else "false"},
        )
        values = SessionValues(self._sessions, key, {})
        saving = self._sessions._call(self._sessions.database.save(key, changes))
        return saving.addCallback(
            lambda _: KleinSession(
                identifier, isConfidential, authenticatedBy, values, self._authorizers
            )
        )

    def loadSession(
        self, identifier: str, isConfidential: bool, authenticatedBy: SessionMechanism
    ) -> Deferred[ISession]:
        """
        Load a live session made with the same confidentiality.
        """

        async def load() -> ISession:
            if not isWellFormedID(identifier):
                raise NoSuchSession("malformed session identifier")
            key = storeKey(identifier)
            stored = await self._sessions._call(self._sessions.database.load(key))
            if stored is None or stored.lifetime.hasExpired(self._sessions._now()):
                raise NoSuchSession("no such session")
            confidential = stored.values.get(CONFIDENTIAL) == "true"
            if confidential != isConfidential:
                raise NoSuchSession("the session was made over another transport")
            try:
                values, _, _ = splitFields(stored.values)
            except ValueError:
                raise NoSuchSession("the session holds data that is not JSON") from None
            return KleinSession(
                identifier,
                isConfidential,
                authenticatedBy,
                SessionValues(self._sessions, key, values),
                self._authorizers,
            )

        return Deferred.fromCoroutine(load())

    def sentInsecurely(self, identifiers: Sequence[str | bytes]) -> None:
        """
        Destroy the confidential sessions whose identifiers went over plain
        HTTP: they are no longer secret.  (Klein passes every token an
        insecure request carried, its insecure session's included.)
        """

        async def destroy(identifier: str) -> None:
            key = storeKey(identifier)
            stored = await self._sessions._call(self._sessions.database.load(key))
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
