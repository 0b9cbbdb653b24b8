"""
Opening a Redis database that cannot work: a URL urllib refuses, a URL that
names something other than Redis, and an install without the C{redis}
extra.  Each is refused, or reported once, saying why and quoting no
password.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, formatEvent
from twisted.python import usage

from tests.db.test_redis_faults import logged, quick, waitUntil  # noqa: F401
from txsessions import DatabaseError
from txsessions.db import openDatabase
from txsessions.db.redis import RedisDatabase, RedisURL
from txsessions.tap import Options

# Characters that NFKC normalises to one of / ? # @ : (full-width ones, and
# the "a/c" sign), which urllib refuses in a URL's netloc, quoting it whole.
NORMALISED = ["\uff03", "\uff20", "\uff0f", "\uff1f", "\uff1a", "\u2100"]


def passwordURL(character: str) -> str:
    return f"redis://app:hunter2{character}x@redis.example:6379/0"


@pytest.mark.parametrize("character", NORMALISED)
def test_aURLurllibRefusesQuotesNoPassword(character: str) -> None:
    """
    A password holding a character urllib refuses is refused with
    txsessions' own message, which quotes none of the URL.
    """
    with pytest.raises(ValueError, match="bad Redis URL") as refused:
        RedisURL.parse(passwordURL(character))
    assert "hunter2" not in str(refused.value)


def test_openDatabaseAndTwistdQuoteNoPassword() -> None:
    """
    Neither L{openDatabase} nor twistd's options echo such a password.
    """
    url = passwordURL("\uff03")
    with pytest.raises(ValueError) as refused:
        openDatabase(url)
    assert "hunter2" not in str(refused.value)
    with pytest.raises(usage.UsageError) as usageError:
        Options().parseOptions(["--database", url])
    assert "hunter2" not in str(usageError.value)


class NotRedis(protocol.Protocol):
    """
    A server that is not Redis: it answers anything with an HTTP error.
    """

    def dataReceived(self, data: bytes) -> None:
        transport: Any = self.transport
        transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        transport.loseConnection()


class Counting(protocol.ServerFactory):
    """
    Builds L{NotRedis}, counting the connections.
    """

    protocol = NotRedis
    connections = 0

    def buildProtocol(self, addr: Any) -> Any:
        self.connections += 1
        return super().buildProtocol(addr)


@pytest_twisted.async_yield_fixture
async def notRedis() -> AsyncIterator[tuple[Counting, int]]:
    """
    A server that is not Redis, on a free loopback port: its factory, and
    the port.
    """
    factory = Counting()
    port: Any = reactor.listenTCP(0, factory, interface="127.0.0.1")
    yield factory, port.getHost().port
    await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_aServerThatIsNotRedisIsOneWarning(
    notRedis: tuple[Counting, int],
    logged: list[dict[str, Any]],  # noqa: F811
) -> None:
    """
    A URL naming a server that does not speak Redis's protocol (a wrong
    port, an HTTP server) is an outage like another: calls fail at once,
    saying so, and it is logged once, as a warning, however many times the
    pool and the subscriber retry; never an unhandled error.
    """
    server, port = notRedis
    db = RedisDatabase(f"redis://127.0.0.1:{port}/0")
    quick(db)
    try:
        await waitUntil(lambda: server.connections >= 6, "six attempts")
        expected = f"the server at 127.0.0.1:{port} does not speak the Redis protocol"
        with pytest.raises(DatabaseError, match=expected):
            await db.load("k")
    finally:
        await db.close()
    serious = [e for e in logged if e["log_level"] >= LogLevel.warn]
    texts = [str(formatEvent(e)) for e in serious]
    assert len(texts) == 1 and expected in texts[0], texts


@pytest.mark.parametrize(
    ("url", "missing"),
    [
        ("redis://127.0.0.1:1/0", "txredisapi"),
        ("unix:///tmp/no.sock", "txredisapi"),
        ("rediss://redis.example:6380/0", "OpenSSL"),
        ("rediss://redis.example:6380/0", "service_identity"),
    ],
)
def test_withoutTheExtraTheDatabaseSaysWhatToInstall(
    monkeypatch: pytest.MonkeyPatch, url: str, missing: str
) -> None:
    """
    Without the C{redis} extra, a Redis database is refused with an
    L{ImportError} that gives the C{pip install} line, as L{openDatabase}
    refuses its URL.
    """
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ImportError) as refused:
        RedisDatabase(url, reactor=MemoryReactorClock())
    message = str(refused.value)
    assert "pip install 'txsessions[redis]'" in message, message
    assert f"no module {missing}" in message
