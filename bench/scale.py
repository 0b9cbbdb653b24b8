"""
A million sessions in the memory database, beside Twisted's own Session:

    python bench/scale.py [N ...]      (default: 100000 1000000)

For each N, for txsessions and for Twisted's Site.makeSession(): the bytes
each session costs (beyond its values, measured with tracemalloc), how many
are created per second (the best of three runs, alternating), and how long
a full garbage collection takes with N sessions alive (the longest of those
runs: Python collects in full from time to time, and the reactor waits).
Then all N txsessions sessions expire in the same second under the real
reactor while a LoopingCall every 10 ms measures its own lateness: the
longest is the longest the reactor was blocked.  (A reactor runs once per
process; Twisted's Session, one DelayedCall each, blocked it 290 ms for
200,000 in the issue's own measurement.)
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's txsessions

from twisted.internet import reactor  # noqa: E402
from twisted.internet.task import LoopingCall  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import Site  # noqa: E402

from txsessions import MemoryDatabase  # noqa: E402
from txsessions.ids import generateSessionID, storeKey  # noqa: E402
from txsessions.interfaces import Lifetime, SessionChanges  # noqa: E402

RUNS = 3
"""
How many times each creation rate is measured; the best run counts.
"""


def txsessionsMaker(clock: Any, expiresAt: float) -> tuple[Any, Callable[[], None]]:
    db = MemoryDatabase(clock, maxSessions=0)  # a million: past the default cap

    def make() -> None:
        # A Lifetime of its own, with floats of its own (expiresAt + 0.0 is a
        # new float of the same value), as each session the manager creates.
        lifetime = Lifetime(clock.seconds(), expiresAt + 0.0)
        db.save(
            storeKey(generateSessionID()),
            SessionChanges(create=True, lifetime=lifetime),
        )

    return db, make


def twistedMaker(clock: Any, expiresAt: float) -> tuple[Any, Callable[[], None]]:
    site = Site(Resource())
    site.reactor = clock
    site.sessionFactory.sessionTimeout = expiresAt - clock.seconds()

    def make() -> None:
        site.makeSession()

    return site, make


def made(maker: Any, n: int, traced: bool) -> tuple[float, float]:
    """
    Make n sessions on the real reactor (not yet running), whose heap of
    timed calls is what a server pays for; every call is cancelled afterwards.

    @return: bytes per session when C{traced}, else sessions created per
        second; and how long a full garbage collection took with them alive.
    """
    gc.collect()
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    keep, make = maker(reactor, reactor.seconds() + 10_000.0)
    started = time.perf_counter()
    for _ in range(n):
        make()
    elapsed = time.perf_counter() - started
    if traced:
        result = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
    else:
        result = n / elapsed
    started = time.perf_counter()
    gc.collect()
    collected = time.perf_counter() - started
    for call in reactor.getDelayedCalls():
        call.cancel()
    # Let the reactor drop the cancelled calls, and with them what they hold,
    # so that the next run's collection does not walk this run's sessions.
    reactor.runUntilCurrent()  # type: ignore[attr-defined]
    del keep, make
    return result, collected


def longestBlock(maker: Any, n: int) -> tuple[float, float]:
    """
    Let n sessions expire in the same second under the real reactor.

    @return: the longest the reactor was blocked, in seconds, and how long
        expiring them all took.
    """
    expiresAt = reactor.seconds() + 2 + n / 100_000  # after they are all made
    keep, make = maker(reactor, expiresAt)
    for _ in range(n):
        make()
    worst = [0.0]
    last = [reactor.seconds()]

    def tick() -> None:
        now = reactor.seconds()
        worst[0] = max(worst[0], now - last[0] - 0.010)
        last[0] = now

    def live() -> int:
        if isinstance(keep, Site):
            return len(keep.sessions)
        return len(keep._createdAt)

    ticker = LoopingCall(tick)

    def start() -> None:
        last[0] = reactor.seconds()
        ticker.start(0.010)

    def check() -> None:
        try:
            if live() != 0:
                reactor.callLater(0.05, check)
                return
            done[0] = reactor.seconds()
        except Exception as e:
            # Stop rather than leave the reactor running forever.
            failed.append(e)
        ticker.stop()
        reactor.stop()

    done = [0.0]
    failed: list[Exception] = []
    reactor.callLater(0, start)
    reactor.callLater(0.05, check)
    reactor.run()
    if failed:
        raise failed[0]
    return worst[0], done[0] - expiresAt


def main(sizes: list[int]) -> None:
    makers = {"txsessions": txsessionsMaker, "Twisted": twistedMaker}
    for n in sizes:
        size = {name: made(maker, n, traced=True)[0] for name, maker in makers.items()}
        # Best of RUNS, alternating: one run moves by a quarter with the
        # machine's load (Twisted's the most, from its heap of DelayedCalls).
        rate = {name: 0.0 for name in makers}
        pause = {name: 0.0 for name in makers}
        for _ in range(RUNS):
            for name, maker in makers.items():
                created, collected = made(maker, n, traced=False)
                rate[name] = max(rate[name], created)
                pause[name] = max(pause[name], collected)
        ours, theirs = rate["txsessions"], rate["Twisted"]
        print(f"N={n:,}")
        print(
            f"  bytes/session   txsessions {size['txsessions']:7.0f}"
            f"   Twisted {size['Twisted']:7.0f}"
        )
        print(
            f"  created/s       txsessions {ours:7.0f}   Twisted {theirs:7.0f}"
            f"   ratio {ours / theirs:.2f}x"
        )
        print(
            f"  full collection txsessions {pause['txsessions'] * 1000:5.0f} ms"
            f"   Twisted {pause['Twisted'] * 1000:5.0f} ms"
        )
    n = sizes[-1]
    worst, took = longestBlock(txsessionsMaker, n)
    print(
        f"{n:,} txsessions sessions expiring in one second: longest reactor block "
        f"{worst * 1000:.1f} ms, all gone {took:.2f} s after their expiry"
    )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000])
