"""
Helpers for the tests: reading fired Deferreds, an in-memory HTTP client,
and a database whose answers the test controls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from http.cookies import SimpleCookie
from typing import Any, TypeVar

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from zope.interface import implementer

from txsessions import MemoryDatabase
from txsessions._fields import changesRecord
from txsessions.interfaces import DestroyListener, IDatabase
from txsessions.records import (
    DestroyReason,
    SessionChanges,
    SessionInfo,
    StoredSession,
)

T = TypeVar("T")

COOKIE = "sid"
"""
The cookie name of the C{sessions} fixture.
"""


def resultOf(d: Deferred[T]) -> T:
    """
    The result of a Deferred that has fired; fails the test otherwise.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, f"{d!r} has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]  # type: ignore[no-any-return]


def setCookies(response: Any) -> list[str]:
    """
    The Set-Cookie header values of a treq response.
    """
    return list(response.headers.getRawHeaders("set-cookie", []))


def cookieValue(response: Any, name: str) -> str:
    """
    The value a response sets for one cookie; fails the test when it sets
    none, or more than one.
    """
    values = []
    for header in setCookies(response):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        if name in cookie:
            values.append(cookie[name].value)
    assert len(values) == 1, f"expected one {name} cookie, got {setCookies(response)}"
    return values[0]


def login(browser: Browser) -> str:
    """
    Write to a new session through L{tests.apps.kvApp}.

    @return: its id.
    """
    response, _ = browser.get("/set/user/alice")
    return cookieValue(response, COOKIE)


class Browser:
    """
    Requests over StubTreq, in memory, each run to completion.  No cookie jar:
    each request sends only the cookies it is given.
    """

    def __init__(self, resource: Any, base: str = "http://example.com") -> None:
        self.resource = resource
        self.base = base

    def request(
        self,
        method: str,
        path: str,
        cookies: dict[str, str] | None = None,
        headers: dict[bytes, list[bytes]] | None = None,
    ) -> tuple[Any, bytes]:
        """
        @return: the response and its body.
        """
        stub: Any = StubTreq(self.resource)
        d = stub.request(
            method,
            self.base + path,
            cookies=cookies or {},
            headers=headers or {},
            allow_redirects=False,
        )
        stub.flush()
        response = resultOf(d)
        body = resultOf(response.content())
        return response, body

    def get(
        self, path: str, cookies: dict[str, str] | None = None
    ) -> tuple[Any, bytes]:
        return self.request("GET", path, cookies)

    def start(self, path: str, cookies: dict[str, str] | None = None) -> Pending:
        """
        Send a GET that may wait (on a held database, on the clock).

        @return: the request under way.
        """
        return Pending(self.resource, self.base + path, cookies)


class Pending:
    """
    A request over StubTreq that may not be answered yet.

    @ivar fired: the response, once there is one.
    """

    def __init__(self, resource: Any, url: str, cookies: dict[str, str] | None) -> None:
        stub: Any = StubTreq(resource)
        self.fired: list[Any] = []
        stub.get(url, cookies=cookies or {}).addCallback(self.fired.append)
        stub.flush()
        self._stub = stub

    def flush(self) -> None:
        """
        Let the stub deliver what is ready.
        """
        self._stub.flush()


@implementer(IDatabase)
class ControlledDatabase:
    """
    A L{MemoryDatabase} whose loads and saves wait for the test, or fail.

    @ivar holdSaves: when true, each save waits in C{heldSaves} until the
        test fires it with C{release}.
    @ivar failLoads: when true, loads fail.
    @ivar failSaves: when true, saves fail.
    """

    def __init__(self, clock: Any) -> None:
        self.memory = MemoryDatabase(clock)
        self.holdSaves = False
        self.holdLoads = False
        self.heldLoads: list[Callable[[], None]] = []
        self.failLoads = False
        self.failSaves = False
        self.failDestroys = False
        self.heldSaves: list[Callable[[], None]] = []
        self.loads = 0
        self.saves: list[SessionChanges] = []

    def load(self, key: str) -> Deferred[StoredSession | None]:
        self.loads += 1
        if self.failLoads:
            return fail(OSError("the store is down"))
        if not self.holdLoads:
            return self.memory.load(key)
        d: Deferred[StoredSession | None] = Deferred()

        def release() -> None:
            self.memory.load(key).chainDeferred(d)

        self.heldLoads.append(release)
        return d

    def save(
        self, key: str, changes: SessionChanges
    ) -> Deferred[Mapping[str, int] | None]:
        self.saves.append(changes)
        if self.failSaves:
            return fail(OSError("the store is down"))
        if not self.holdSaves:
            return self.memory.save(key, changes)
        d: Deferred[Mapping[str, int] | None] = Deferred()

        def release() -> None:
            self.memory.save(key, changes).chainDeferred(d)

        self.heldSaves.append(release)
        return d

    def release(self) -> None:
        held, self.heldSaves = self.heldLoads + self.heldSaves, []
        self.heldLoads = []
        for r in held:
            r()

    def rename(self, oldKey: str, newKey: str) -> Deferred[bool]:
        return self.memory.rename(oldKey, newKey)

    def destroy(self, key: str, reason: DestroyReason) -> Deferred[bool]:
        if self.failDestroys:
            return fail(OSError("the store is down"))
        return self.memory.destroy(key, reason)

    def destroyAll(self, reason: DestroyReason) -> Deferred[int]:
        return self.memory.destroyAll(reason)

    def count(self) -> Deferred[int]:
        return self.memory.count()

    def sessions(self, prefix: str = "") -> Deferred[list[SessionInfo]]:
        return self.memory.sessions(prefix)

    def sessionsOf(self, owner: str) -> Deferred[list[SessionInfo]]:
        return self.memory.sessionsOf(owner)

    def purgeExpired(self) -> Deferred[int]:
        return self.memory.purgeExpired()

    def listen(self, listener: DestroyListener) -> Callable[[], None]:
        return self.memory.listen(listener)

    def close(self) -> Deferred[None]:
        return self.memory.close()


class InPartsDatabase(ControlledDatabase):
    """
    A L{ControlledDatabase} that also loads in parts, as Redis does
    (C{loadParts}: the lifetime and fields, not a L{StoredSession}); held
    and failed as its loads are.

    @ivar partLoads: how many loads were made in parts.
    @ivar partSaves: how many saves were made in parts.
    """

    def __init__(self, clock: Any) -> None:
        super().__init__(clock)
        self.partLoads = 0
        self.partSaves = 0

    def loadParts(
        self, key: str
    ) -> Deferred[tuple[float, float | None, Mapping[str, str]] | None]:
        self.partLoads += 1

        def inParts(
            stored: StoredSession | None,
        ) -> tuple[float, float | None, Mapping[str, str]] | None:
            if stored is None:
                return None
            lifetime = stored.lifetime
            return lifetime.createdAt, lifetime.expiresAt, stored.values

        return self.load(key).addCallback(inParts)

    def saveParts(
        self,
        key: str,
        create: bool,
        times: tuple[float, float | None] | None,
        clear: bool,
        deleted: Iterable[str],
        updated: Mapping[str, str],
        increments: Mapping[str, int],
    ) -> Deferred[Mapping[str, int] | None]:
        self.partSaves += 1
        parts = (create, times, clear, frozenset(deleted), updated, increments)
        return self.save(key, changesRecord(parts))


def plainClient() -> Any:
    """
    A treq client on the real reactor that opens a connection per request,
    for servers in other processes.
    """
    from treq.client import HTTPClient
    from twisted.internet import reactor
    from twisted.web.client import Agent, HTTPConnectionPool

    return HTTPClient(
        Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    )


def rawHTTP(resource: Any, request: bytes) -> Any:
    """
    Feed raw bytes to a Site over an in-memory transport.

    @return: the transport, whose C{value()} is everything the server wrote.
    """
    from twisted.internet.testing import StringTransport
    from twisted.web.server import Site

    protocol = Site(resource).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    return transport


class Leaf(Resource):
    """
    A leaf resource whose C{GET} is C{render(request)}.
    """

    isLeaf = True

    def __init__(self, render: Callable[[IRequest], Any]) -> None:
        super().__init__()
        self._render = render

    def render_GET(self, request: IRequest) -> Any:
        return self._render(request)


def get(path: bytes = b"/", extra: bytes = b"", method: bytes = b"GET") -> bytes:
    """
    @return: the bytes of an HTTP/1.1 request.
    """
    return method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"
