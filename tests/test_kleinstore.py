"""
KleinSessionStore with Klein's own SessionProcurer and Requirer.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from klein import Authorization, Klein, Requirer, SessionProcurer
from klein.interfaces import ISession, ISessionStore, NoSuchSession, SessionMechanism
from klein.storage.memory import declareMemoryAuthorizer
from twisted.internet.defer import succeed
from twisted.web.iweb import IRequest
from zope.interface import Attribute, Interface, implementer
from zope.interface.verify import verifyObject

from tests.support import (
    Browser,
    ControlledDatabase,
    cookieValue,
    resultOf,
    setCookies,
)
from txsessions import Config, DestroyReason, Sessions
from txsessions._hold import UNAVAILABLE
from txsessions.db.memory import MemoryDatabase
from txsessions.errors import ValueNotSerializable
from txsessions.ids import storeKey
from txsessions.interfaces import ISessionValues, SessionChanges
from txsessions.kleinstore import CONFIDENTIAL, KleinSessionStore, answerUnavailable

INSECURE = "Klein-INSECURE-Session"


@pytest.fixture
def kleinSessions(clock: Any) -> Sessions:
    return Sessions(Config(expires=60), clock=clock)


@pytest.fixture
def store(kleinSessions: Sessions) -> KleinSessionStore:
    return KleinSessionStore(kleinSessions)


@pytest.fixture
def app(store: KleinSessionStore) -> Browser:
    return Browser(kleinApp(store).resource())


def kleinApp(store: KleinSessionStore) -> Klein:
    """
    A Klein app on C{store}: C{/hits} counts, C{/name/NAME} and C{/name}
    set and read a value.
    """
    app = Klein()
    requirer = Requirer()
    procurer = SessionProcurer(store)

    @requirer.prerequisite([ISession])
    def procure(request: IRequest) -> Any:
        return procurer.procureSession(request)

    @requirer.require(app.route("/hits"), values=Authorization(ISessionValues))
    async def hits(values: ISessionValues) -> str:
        return str(await values.increment("hits"))

    @requirer.require(app.route("/name/<name>"), values=Authorization(ISessionValues))
    async def setName(values: ISessionValues, name: str) -> str:
        await values.set("name", name)
        return "ok"

    @requirer.require(app.route("/name"), values=Authorization(ISessionValues))
    def getName(values: ISessionValues) -> str:
        return str(values.get("name"))

    return app


def test_providesISessionStore(store: KleinSessionStore) -> None:
    assert verifyObject(ISessionStore, store)
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    assert verifyObject(ISession, session)


def test_requirerGetsValuesThatPersist(app: Browser) -> None:
    response, body = app.get("/hits")
    assert body == b"1"
    cookie = {INSECURE: cookieValue(response, INSECURE)}
    assert app.get("/hits", cookie)[1] == b"2"
    app.get("/name/ann", cookie)
    assert app.get("/name", cookie)[1] == b"ann"


def test_sessionsExpire(app: Browser, clock: Any, kleinSessions: Sessions) -> None:
    events: list[Any] = []
    kleinSessions.onDestroy(lambda *a: events.append(a))
    response, _ = app.get("/hits")
    sid = cookieValue(response, INSECURE)
    clock.advance(60)
    assert events == [(storeKey(sid), DestroyReason.expired)]
    response, body = app.get("/hits", {INSECURE: sid})
    assert body == b"1"
    assert cookieValue(response, INSECURE) != sid


def test_unknownAndMalformedIdentifiers(store: KleinSessionStore) -> None:
    for identifier in ("A" * 43, "../x", ""):
        with pytest.raises(NoSuchSession):
            resultOf(store.loadSession(identifier, False, SessionMechanism.Cookie))


def test_confidentialityMustMatch(store: KleinSessionStore) -> None:
    secure = resultOf(store.newSession(True, SessionMechanism.Cookie))
    with pytest.raises(NoSuchSession, match="another transport"):
        resultOf(store.loadSession(secure.identifier, False, SessionMechanism.Cookie))
    loaded = resultOf(
        store.loadSession(secure.identifier, True, SessionMechanism.Header)
    )
    assert loaded.isConfidential and loaded.authenticatedBy is SessionMechanism.Header


def test_sentInsecurelyDestroysTheSession(
    store: KleinSessionStore, kleinSessions: Sessions
) -> None:
    secure = resultOf(store.newSession(True, SessionMechanism.Cookie))
    store.sentInsecurely([secure.identifier])
    with pytest.raises(NoSuchSession):
        resultOf(store.loadSession(secure.identifier, True, SessionMechanism.Cookie))


def test_authorizeGrantsOnlyValues(store: KleinSessionStore) -> None:
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    granted = resultOf(session.authorize([ISessionValues, ISessionStore]))
    assert list(granted) == [ISessionValues]
    values = granted[ISessionValues]
    assert verifyObject(ISessionValues, values)
    resultOf(values.set("a", [1]))
    assert resultOf(values.delete("a")) is True
    assert resultOf(values.delete("a")) is False
    assert values.getAll() == {}


@pytest.mark.parametrize("failure", ["full", "down"])
def test_aFailingDatabaseIsA503(clock: Any, failure: str) -> None:
    """
    Under L{answerUnavailable}, a Klein app on this store answers 503, as
    L{Sessions.withSession} does, when the database is full or down: not
    Klein's 500 "Processing Failed" page.
    """
    db = ControlledDatabase(clock)
    db.memory = MemoryDatabase(clock, maxSessions=1)
    sessions = Sessions(Config(expires=60), database=db, clock=clock)
    app = kleinApp(KleinSessionStore(sessions))
    answerUnavailable(app)
    browser = Browser(app.resource())
    response, body = browser.get("/hits")
    assert (response.code, body) == (200, b"1")
    if failure == "down":
        db.failSaves = db.failLoads = True
    response, body = browser.get("/hits")
    assert response.code == 503
    assert body == UNAVAILABLE
    assert setCookies(response) == []
    assert response.headers.getRawHeaders("cache-control") == ["no-store"]


@pytest.mark.parametrize("key", [CONFIDENTIAL, "\x00owner", 7])
def test_deleteRefusesWhatSetRefuses(store: KleinSessionStore, key: Any) -> None:
    """
    txsessions' own fields (their names start with NUL) are no values: the
    mark that a session was made over TLS cannot be deleted, to have it
    load over plain HTTP.
    """
    secure = resultOf(store.newSession(True, SessionMechanism.Cookie))
    values = resultOf(secure.authorize([ISessionValues]))[ISessionValues]
    with pytest.raises(ValueNotSerializable):
        values.delete(key)
    with pytest.raises(NoSuchSession, match="another transport"):
        resultOf(store.loadSession(secure.identifier, False, SessionMechanism.Cookie))


def test_valuesOfADestroyedSession(
    store: KleinSessionStore, kleinSessions: Sessions
) -> None:
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    values = resultOf(session.authorize([ISessionValues]))[ISessionValues]
    resultOf(kleinSessions.destroyByID(session.identifier))
    with pytest.raises(NoSuchSession):
        resultOf(values.set("a", 1))


def test_sentInsecurelyLooksAtAFewDistinctTokens(
    store: KleinSessionStore, kleinSessions: Sessions
) -> None:
    db: Any = kleinSessions.database
    loads: list[str] = []
    load = db.load

    def spy(key: str) -> Any:
        loads.append(key)
        return load(key)

    db.load = spy
    store.sentInsecurely([b"A" * 43] * 50 + [b"B" * 43, b"C" * 43, b"D" * 43, b"bad"])
    assert len(loads) == 3


class IFoo(Interface):
    pass


class IBar(Interface):
    pass


class IUser(Interface):
    name = Attribute("the user's name")


@implementer(IUser)
@attrs.frozen
class User:
    name: str


def test_simpleAuthorization(kleinSessions: Sessions) -> None:
    # Klein's test_simpleAuthorization, on KleinSessionStore(authorizers=).
    @declareMemoryAuthorizer(IFoo)
    def fooMe(interface: Any, session: Any, values: Any) -> int:
        return 1

    @declareMemoryAuthorizer(IBar)
    def barMe(interface: Any, session: Any, values: Any) -> int:
        return 2

    store = KleinSessionStore(kleinSessions, authorizers=[fooMe, barMe])
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    assert resultOf(session.authorize([IBar, IFoo])) == {IFoo: 1, IBar: 2}


def test_authorizersAreAskedInOrderAndMayAnswerLater(kleinSessions: Sessions) -> None:
    asked: list[Any] = []

    def declines(interface: Any, session: Any, values: Any) -> None:
        asked.append(interface)

    def later(interface: Any, session: Any, values: Any) -> Any:
        return succeed("later") if interface is IFoo else None

    async def coroutine(interface: Any, session: Any, values: Any) -> Any:
        return values.get("bar") if interface is IBar else None

    store = KleinSessionStore(kleinSessions, [declines, later, coroutine])
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    values = resultOf(session.authorize([ISessionValues]))[ISessionValues]
    assert asked == []
    resultOf(values.set("bar", "from the values"))
    granted = resultOf(session.authorize([IFoo, IBar, ISessionStore]))
    assert granted == {IFoo: "later", IBar: "from the values"}
    assert asked == [IFoo, IBar, ISessionStore]


def userFromValues(interface: Any, session: Any, values: Any) -> User | None:
    name = values.get("user")
    return None if name is None else User(name)


def test_authorization(kleinSessions: Sessions) -> None:
    # Klein's test_authorization and test_authorizationDenied: a route
    # asking for Authorization(IUser) gets the authorizer's provider, or
    # Klein's 401 "... DENIED" when it answers None.
    store = KleinSessionStore(kleinSessions, authorizers=[userFromValues])
    app = Klein()
    requirer = Requirer()
    procurer = SessionProcurer(store)

    @requirer.prerequisite([ISession])
    def procure(request: IRequest) -> Any:
        return procurer.procureSession(request)

    @requirer.require(app.route("/login/<name>"), values=Authorization(ISessionValues))
    async def login(values: ISessionValues, name: str) -> str:
        await values.set("user", name)
        return "ok"

    @requirer.require(app.route("/me"), user=Authorization(IUser))
    def me(user: IUser) -> str:
        return f"ok: {user.name}"

    browser = Browser(app.resource())
    response, body = browser.get("/me")
    assert response.code == 401
    assert body == b"tests.test_kleinstore.IUser DENIED"
    response, _ = browser.get("/login/ann")
    cookie = {INSECURE: cookieValue(response, INSECURE)}
    assert browser.get("/me", cookie)[1] == b"ok: ann"


@pytest.mark.parametrize("n", [1.5, True])
def test_incrementRefusesWhatSessionRefuses(store: KleinSessionStore, n: Any) -> None:
    # Issue 16: Session.increment refuses floats and booleans; so do these.
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    values = resultOf(session.authorize([ISessionValues]))[ISessionValues]
    with pytest.raises(TypeError, match="integers"):
        values.increment("n", n)


def test_incrementRefusesWhatNoDatabaseCounts(store: KleinSessionStore) -> None:
    # As Session.increment: 64-bit integers only.
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    values = resultOf(session.authorize([ISessionValues]))[ISessionValues]
    with pytest.raises(ValueError, match="64-bit"):
        values.increment("n", 2**63)


def test_newSessionsUseTheConfiguredIDGenerator(clock: Any) -> None:
    made = iter(f"{i:043d}" for i in range(10))
    sessions = Sessions(Config(sessionIDGenerator=lambda _: next(made)), clock=clock)
    session = resultOf(
        KleinSessionStore(sessions).newSession(False, SessionMechanism.Cookie)
    )
    assert session.identifier == "0" * 43
    assert resultOf(sessions.database.load(storeKey("0" * 43))) is not None


def test_useUnderIdleTimeoutPushesTheEndBack(clock: Any) -> None:
    sessions = Sessions(Config(idleTimeout=100), clock=clock)
    store = KleinSessionStore(sessions)
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    for _ in range(5):
        clock.advance(60)
        resultOf(store.loadSession(session.identifier, False, SessionMechanism.Cookie))
    stored = resultOf(sessions.database.load(storeKey(session.identifier)))
    assert stored is not None and stored.lifetime.expiresAt == 400


def test_aPushBackThatRaisesIsAStoreFailure(clock: Any) -> None:
    """
    Under C{idleTimeout}, a database whose save raises (rather than failing
    its L{Deferred}) when a load pushes the end back fails the load with a
    L{DatabaseError}, counted as a store error.
    """
    from txsessions import DatabaseError, MemoryDatabase

    class Raising(MemoryDatabase):
        raising = False

        def save(self, key: str, changes: Any) -> Any:
            if self.raising:
                raise OSError("the disk went away")
            return super().save(key, changes)

    database = Raising(clock)
    sessions = Sessions(Config(idleTimeout=100), database, clock)
    store = KleinSessionStore(sessions)
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    clock.advance(60)
    database.raising = True
    failures: list[Any] = []
    loading = store.loadSession(session.identifier, False, SessionMechanism.Cookie)
    loading.addErrback(failures.append)
    [failure] = failures
    assert failure.check(DatabaseError)
    assert sessions.metrics.storeErrors == 1


def test_anUndecodableRecordIsNoSession(
    store: KleinSessionStore, kleinSessions: Sessions
) -> None:
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    deep = "[" * 100_000 + "]" * 100_000
    key = storeKey(session.identifier)
    resultOf(kleinSessions.database.save(key, SessionChanges(updated={"v": deep})))
    with pytest.raises(NoSuchSession):
        resultOf(store.loadSession(session.identifier, False, SessionMechanism.Cookie))


def test_aWriteToASessionDestroyedMeanwhileIsAConflict(
    store: KleinSessionStore, kleinSessions: Sessions
) -> None:
    """
    A Klein route writing to a session that another request destroyed
    meanwhile (the user logged out in another tab) answers 409 under
    L{answerUnavailable}, as C{withSession} does, not Klein's 500 page
    (helper-41); its values keep only what was saved.  The error is still
    Klein's C{NoSuchSession}.
    """
    app = kleinApp(store)
    requirer = Requirer()
    procurer = SessionProcurer(store)
    seen: list[Any] = []

    @requirer.prerequisite([ISession])
    def procure(request: IRequest) -> Any:
        return procurer.procureSession(request)

    route = app.route("/logout-then-set")

    @requirer.require(route, values=Authorization(ISessionValues))
    async def logoutThenSet(values: ISessionValues) -> str:
        await kleinSessions.destroyAll()
        try:
            await values.set("cart", [1])
        except NoSuchSession:
            seen.append(values.getAll())
            raise
        return "ok"

    answerUnavailable(app)
    browser = Browser(app.resource())
    response, _ = browser.get("/name/alice")
    sid = cookieValue(response, INSECURE)
    response, body = browser.get("/logout-then-set", {INSECURE: sid})
    assert response.code == 409, body
    assert seen == [{"name": "alice"}]


def test_kleinSessionsAreCountedAndTimed(
    store: KleinSessionStore, kleinSessions: Sessions
) -> None:
    """
    A session the Klein store creates counts in C{metrics.created} (its
    destroy counts in C{destroyed}), and its loads and saves in the load
    and save latencies (helper-41: created stayed 0, and every call was
    "other").
    """
    session = resultOf(store.newSession(False, SessionMechanism.Cookie))
    assert kleinSessions.metrics.created == 1
    loaded = resultOf(
        store.loadSession(session.identifier, False, SessionMechanism.Cookie)
    )
    [values] = resultOf(loaded.authorize([ISessionValues])).values()
    resultOf(values.set("name", "alice"))
    latency = kleinSessions.metrics.latency
    assert (latency["load"].calls, latency["save"].calls) == (1, 2)
