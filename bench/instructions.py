"""
CPU instructions per request, counted by valgrind, beside bare Klein:

    python bench/instructions.py [--redis URL] [--clients N] [KIND ...]
        (default: bare twisted klein txsessions; with --redis, redisfloor redis)

KIND "later" is txsessions on a memory database whose loads and saves
answer after the request has been read, as a remote database does (Redis,
SQLite writes): the request path's answered-later cost, without a network.

KINDS "sqlite" and "lmdb" are txsessions on those databases (a file in a
new temporary folder), served under a running reactor as the kinds over
Redis are (below, --clients too): saves are answered once the writer
thread has committed them, and its instructions are counted with the
reactor thread's (valgrind counts every thread).  How many changes share a
commit moves the count by a few percent from one run to the next.

With --redis URL (a Redis server to use, e.g. redis://127.0.0.1:6379/0),
KIND "redis" is txsessions on it and "redisfloor" bare Klein making one
round trip to it per request (bench/servers.py): each request is answered
once the reactor has turned until the response is complete, the Redis
client's socket and the reactor's turns counted, and the table gains the
ratio of redis to its floor.  The count moves by a fraction of a percent
between runs (how many turns a reply takes).  With --clients N, N
connections each send their requests one after the other, all at once, as
wrk -cN does: requests share the round trips and the reactor's turns as
they do under load (each is counted as one of the N times as many).

Requests/s on a shared machine move by several percent from one run to the
next; instruction counts do not.  Each server of bench/servers.py (memory
database for txsessions) answers requests on one keep-alive connection over
an in-memory transport, inside `valgrind --tool=callgrind` (Debian package
valgrind), in two runs of 100 and 600 requests; the difference divided by
500 is the cost of one request, start-up and warm-up excluded.  Hash
randomisation is off and the garbage collector is off while counting (its
collections would land in one run and not the other), so the same code
gives the same count.  What it leaves out: the kernel's share of a request
and the collector's.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, HERE)  # servers, which puts this checkout's txsessions first

from servers import SCENARIOS, resource  # noqa: E402
from twisted.internet.defer import Deferred, fail, succeed  # noqa: E402

RUNS = (100, 600)


def request(path: bytes, cookie: bytes | None) -> bytes:
    head = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if cookie:
        head += b"Cookie: " + cookie + b"\r\n"
    return head + b"\r\n"


def connect(site: Any) -> tuple[Any, Any]:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    address = IPv4Address("TCP", "127.0.0.1", 1234)
    protocol = site.buildProtocol(address)
    transport = StringTransport(peerAddress=address, hostAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


class Later:
    """
    A memory database whose loads and saves answer once L{answer} is called.
    """

    def __init__(self) -> None:
        from txsessions.db.memory import MemoryDatabase

        self.database = MemoryDatabase()
        self.waiting: list[tuple[Any, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.database, name)

    def _later(self, d: Any) -> Any:
        answer: Any = Deferred()
        self.waiting.append((d, answer))
        return answer

    def load(self, key: str) -> Any:
        return self._later(self.database.load(key))

    def loadParts(self, key: str) -> Any:
        # As Redis offers it: the request path loads in parts.
        return self._later(succeed(self.database.loadAtOnce(key)))

    def save(self, key: str, changes: Any) -> Any:
        return self._later(self.database.save(key, changes))

    def saveParts(self, key: str, *changes: Any) -> Any:
        # As Redis offers it: the request path saves in parts.
        try:
            return self._later(succeed(self.database.saveAtOnce(key, *changes)))
        except Exception:
            return self._later(fail())

    def answer(self) -> None:
        while self.waiting:
            d, answer = self.waiting.pop(0)
            d.chainDeferred(answer)


REMOTE = {"redis": "txsessions", "redisfloor": "redisfloor"}
"""
The kinds served over a Redis server, and the server of bench/servers.py
each is.
"""


EMBEDDED = ("sqlite", "lmdb")
"""
The kinds served on an embedded database, whose saves are answered once
the writer thread has committed them.
"""


def serveRemote(site: Any, scenario: str, count: int, clients: int = 1) -> None:
    """
    L{serve} for a server over Redis, under a running reactor: C{clients}
    connections each answer C{count} requests, each request sent once the
    connection's last response is complete (the servers' responses are
    chunked), one reactor turn later.
    """
    from twisted.internet import defer, reactor, task
    from twisted.internet.testing import StringTransport

    turned: Any = reactor

    class Answered(StringTransport):
        done: Any = None

        def write(self, data: bytes) -> None:
            super().write(data)
            if self.done is not None and self.value().endswith(b"0\r\n\r\n"):
                done, self.done = self.done, None
                turned.callLater(0, done.callback, None)

    def connected() -> tuple[Any, Answered]:
        from twisted.internet.address import IPv4Address

        address = IPv4Address("TCP", "127.0.0.1", 1234)
        protocol = site.buildProtocol(address)
        transport = Answered(peerAddress=address, hostAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    async def answered(protocol: Any, transport: Answered, data: bytes) -> None:
        transport.clear()
        # A response answered at once (an embedded database's read) is
        # complete before dataReceived returns, and clears transport.done.
        done = transport.done = defer.Deferred()
        protocol.dataReceived(data)
        await done

    async def client(data: bytes, requests: int) -> None:
        protocol, transport = connected()
        for _ in range(requests):
            await answered(protocol, transport, data)

    async def all(data: bytes, requests: int) -> None:
        await defer.gatherResults(
            [defer.ensureDeferred(client(data, requests)) for _ in range(clients)]
        )

    async def run() -> None:
        cookie = None
        if scenario != "new":
            protocol, transport = connected()
            await answered(protocol, transport, request(b"/write", None))
            found = re.search(rb"Set-Cookie: ([^;\r]+)", transport.value(), re.I)
            cookie = found.group(1) if found else None
        data = request(b"/" + scenario.encode(), cookie)
        await all(data, 100)
        gc.collect()
        gc.disable()
        toggle = ["callgrind_control", "--instr=on", str(os.getpid())]
        subprocess.run(toggle, capture_output=True, check=True)
        await all(data, count)
        toggle[1] = "--instr=off"
        subprocess.run(toggle, capture_output=True, check=True)

    task.react(lambda _: defer.ensureDeferred(run()))


def warmedUp(site: Any, scenario: str, later: Any = None) -> tuple[Any, Any, bytes]:
    """
    A keep-alive connection to C{site} that has answered 100 requests of
    C{scenario} (with the cookie of a session written first, but for
    C{new}), C{later} (a L{Later} database) answering each.

    @return: the connection's protocol and transport, and the request.
    """
    cookie = None
    if scenario != "new":
        protocol, transport = connect(site)
        protocol.dataReceived(request(b"/write", None))
        if later is not None:
            later.answer()
        found = re.search(rb"Set-Cookie: ([^;\r]+)", transport.value(), re.I)
        cookie = found.group(1) if found else None
    protocol, transport = connect(site)
    data = request(b"/" + scenario.encode(), cookie)
    for _ in range(100):
        protocol.dataReceived(data)
        if later is not None:
            later.answer()
        transport.clear()
    return protocol, transport, data


def serve(
    kind: str, scenario: str, count: int, url: str = "", clients: int = 1
) -> None:
    """
    Answer C{count} requests of C{scenario} (on each of C{clients}
    connections, for a server over Redis), warmed up first.
    """
    from twisted.web.server import Site

    later = None
    remote = kind in REMOTE
    if kind == "later":
        from zope.interface import implementer

        import txsessions.db
        from txsessions.interfaces import IDatabase

        later = implementer(IDatabase)(Later)()

        def openLater(url: str) -> Any:
            return later

        txsessions.db.openDatabase = openLater  # type: ignore[assignment]
        kind = "txsessions"
    if kind in EMBEDDED:
        url = f"{kind}://{tempfile.mkdtemp()}/sessions"
        site = Site(resource("txsessions", url))
        remote = True
    else:
        site = Site(resource(REMOTE[kind], url) if remote else resource(kind))
    site.noisy = False
    if remote:
        serveRemote(site, scenario, count, clients)
        return
    protocol, transport, data = warmedUp(site, scenario, later)
    gc.collect()
    gc.disable()
    toggle = ["callgrind_control", "--instr=on", str(os.getpid())]
    subprocess.run(toggle, capture_output=True, check=True)
    for _ in range(count):
        protocol.dataReceived(data)
        if later is not None:
            later.answer()
        transport.clear()
    toggle[1] = "--instr=off"
    subprocess.run(toggle, capture_output=True, check=True)


def counted(kind: str, scenario: str, count: int, url: str, clients: int) -> int:
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        os.path.abspath(__file__),
        "--serve",
        kind,
        scenario,
        str(count),
        url,
        str(clients),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    output = subprocess.run(argv, capture_output=True, text=True, env=env).stderr
    found = re.search(r"Collected : (\d+)", output)
    if found is None:
        raise RuntimeError(f"valgrind printed no count:\n{output}")
    return int(found.group(1))


def cell(count: float, bare: float) -> str:
    return f"{count / 1000:8.1f}k {bare / count:5.2f}x"


def main(kinds: list[str], url: str, clients: int = 1) -> None:
    if "bare" not in kinds:
        kinds = ["bare", *kinds]
    if not url and REMOTE.keys() & set(kinds):
        raise SystemExit("the kinds redis and redisfloor need --redis URL")
    cases = [(k, s, n) for k in kinds for s in SCENARIOS for n in RUNS]
    # Counts do not depend on what else runs: use every core.
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        totals = dict(
            zip(
                cases,
                pool.map(lambda c: counted(c[0], c[1], c[2], url, clients), cases),
                strict=True,
            )
        )
    counts = {
        (k, s): (totals[k, s, RUNS[1]] - totals[k, s, RUNS[0]])
        / (RUNS[1] - RUNS[0])
        / (clients if k in REMOTE or k in EMBEDDED else 1)
        for k in kinds
        for s in SCENARIOS
    }
    print(f"{'server':12} " + " ".join(f"{s:>20}" for s in SCENARIOS))
    for kind in kinds:
        cells = [cell(counts[kind, s], counts["bare", s]) for s in SCENARIOS]
        print(f"{kind:12} " + " ".join(f"{c:>20}" for c in cells))
    if REMOTE.keys() <= set(kinds):
        ratios = [counts["redisfloor", s] / counts["redis", s] for s in SCENARIOS]
        print(f"{'redis/floor':12} " + " ".join(f"{r:20.2f}" for r in ratios))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("--redis", default="")
        parser.add_argument("--clients", type=int, default=1)
        parser.add_argument("kinds", nargs="*")
        options = parser.parse_args()
        kinds = options.kinds or ["bare", "twisted", "klein", "txsessions"]
        if options.redis and not options.kinds:
            kinds = ["redisfloor", "redis"]
        if options.clients < 1:
            raise SystemExit("--clients takes a number of connections, 1 or more")
        main(kinds, options.redis, options.clients)
