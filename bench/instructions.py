"""
CPU instructions per request, counted by valgrind, beside bare Klein:

    python bench/instructions.py [KIND ...]     (default: bare twisted klein txsessions)

KIND "later" is txsessions on a memory database whose loads and saves
answer after the request has been read, as a remote database does (Redis,
SQLite writes): the request path's answered-later cost, without a network.

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

import gc
import os
import re
import subprocess
import sys
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


def serve(kind: str, scenario: str, count: int) -> None:
    """
    Answer C{count} requests of C{scenario}, warmed up first.
    """
    from twisted.web.server import Site

    later = None
    if kind == "later":
        from zope.interface import implementer

        import txsessions.db
        from txsessions.interfaces import IDatabase

        later = implementer(IDatabase)(Later)()

        def openLater(url: str) -> Any:
            return later

        txsessions.db.openDatabase = openLater  # type: ignore[assignment]
        kind = "txsessions"
    site = Site(resource(kind))
    site.noisy = False
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


def counted(kind: str, scenario: str, count: int) -> int:
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
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    output = subprocess.run(argv, capture_output=True, text=True, env=env).stderr
    found = re.search(r"Collected : (\d+)", output)
    if found is None:
        raise RuntimeError(f"valgrind printed no count:\n{output}")
    return int(found.group(1))


def cell(count: float, bare: float) -> str:
    return f"{count / 1000:8.1f}k {bare / count:5.2f}x"


def main(kinds: list[str]) -> None:
    if "bare" not in kinds:
        kinds = ["bare", *kinds]
    cases = [(k, s, n) for k in kinds for s in SCENARIOS for n in RUNS]
    # Counts do not depend on what else runs: use every core.
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        totals = dict(zip(cases, pool.map(lambda c: counted(*c), cases), strict=True))
    counts = {
        (k, s): (totals[k, s, RUNS[1]] - totals[k, s, RUNS[0]]) / (RUNS[1] - RUNS[0])
        for k in kinds
        for s in SCENARIOS
    }
    print(f"{'server':12} " + " ".join(f"{s:>20}" for s in SCENARIOS))
    for kind in kinds:
        cells = [cell(counts[kind, s], counts["bare", s]) for s in SCENARIOS]
        print(f"{kind:12} " + " ".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main(sys.argv[1:] or ["bare", "twisted", "klein", "txsessions"])
