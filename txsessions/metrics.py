# -*- test-case-name: tests.test_metrics -*-
"""
What a L{Sessions} manager counts as it works, and L{MetricsResource}, which
serves it as JSON for a monitoring system to poll.

Counting costs a few integer additions per request; the latency of each kind
of database call is kept for the most recent L{WINDOW} calls, so that the
percentiles follow the database as it is now, and counted in the buckets of
a histogram (L{BUCKETS}) since start, which L{txsessions.prometheus} serves.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from .records import DestroyReason

if TYPE_CHECKING:
    from twisted.web.server import Request


WINDOW = 1024
"""
How many of the latest calls of each kind the latency figures describe.
"""

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""
The upper bounds, in seconds, of the latency histogram's buckets (and one
more, without bound).
"""

_BATCH = 64
"""
How many calls L{Latency.add} keeps aside before counting them.
"""


class Latency:
    """
    The durations of one kind of database call: how many there were, the
    latest L{WINDOW} of them, and a histogram of them all.

    """

    __slots__ = ("_calls", "_total", "_recent", "_counts", "_pending")

    def __init__(self) -> None:
        self._calls = 0
        self._total = 0.0
        self._recent: deque[float] = deque(maxlen=WINDOW)
        self._counts = [0] * (len(BUCKETS) + 1)
        self._pending: list[float] = []

    def add(self, seconds: float) -> None:
        """
        Record one call.  It is kept aside and counted in batches: this
        runs on every request.

        @param seconds: how long it took.
        """
        pending = self._pending
        pending.append(seconds)
        if len(pending) >= _BATCH:
            self._fold()

    def _fold(self) -> None:
        """
        Count the calls kept aside.
        """
        pending, self._pending = self._pending, []
        self._calls += len(pending)
        self._total += sum(pending)
        self._recent.extend(pending)
        # Sorted, a batch is counted with a search per bucket rather than
        # one per call: a tenth of the cost.
        pending.sort()
        counts = self._counts
        start = 0
        for i, bound in enumerate(BUCKETS):
            end = bisect_right(pending, bound, start)
            counts[i] += end - start
            start = end
        counts[-1] += len(pending) - start

    @property
    def calls(self) -> int:
        """
        How many calls there were.
        """
        self._fold()
        return self._calls

    @property
    def total(self) -> float:
        """
        The sum of every duration, in seconds.
        """
        self._fold()
        return self._total

    def histogram(self) -> list[tuple[float, int]]:
        """
        @return: for each of L{BUCKETS} and then infinity, how many calls
            took at most that long (cumulative, as Prometheus counts).
        """
        self._fold()
        cumulative: list[tuple[float, int]] = []
        seen = 0
        for bound, count in zip([*BUCKETS, float("inf")], self._counts, strict=True):
            seen += count
            cumulative.append((bound, seen))
        return cumulative

    def summary(self) -> dict[str, Any]:
        """
        @return: C{calls} (since start), and the median, 99th percentile and
            maximum of the recent calls in milliseconds (C{None} before any).
        """
        self._fold()
        recent = sorted(self._recent)
        if not recent:
            return {"calls": self.calls, "p50_ms": None, "p99_ms": None, "max_ms": None}

        def percentile(p: float) -> float:
            return round(recent[min(len(recent) - 1, int(p * len(recent)))] * 1e3, 3)

        return {
            "calls": self.calls,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
            "max_ms": round(recent[-1] * 1e3, 3),
        }


class Metrics:
    """
    The counters of one L{Sessions} manager (C{sessions.metrics}).

    @ivar created: sessions this process created (first saved).
    @ivar destroyed: sessions the database destroyed, by L{DestroyReason}
        value; with Redis, every process counts every destroy.
    @ivar storeErrors: database calls that failed or did not answer in time.
    @ivar refusedFull: new sessions a full database refused (its
        C{maxSessions}, C{--max-sessions}); not counted in C{storeErrors}.
    @ivar latency: a L{Latency} for each kind of database call (C{load},
        C{save}, C{other}).
    """

    def __init__(self) -> None:
        self.created = 0
        self.destroyed: Counter[str] = Counter()
        self.storeErrors = 0
        self.refusedFull = 0
        self.latency = {"load": Latency(), "save": Latency(), "other": Latency()}

    def snapshot(self) -> dict[str, Any]:
        """
        @return: every figure, as a JSON-ready C{dict}.
        """
        return {
            "created": self.created,
            "destroyed": {r.value: self.destroyed[r.value] for r in DestroyReason},
            "storeErrors": self.storeErrors,
            "refusedFull": self.refusedFull,
            "latency": {k: window.summary() for k, window in self.latency.items()},
        }


class Counted(Protocol):
    """
    What L{MetricsResource} reports on: a L{txsessions.Sessions} manager.
    """

    @property
    def metrics(self) -> Metrics:
        """
        Its counters.
        """

    def count(self) -> Deferred[int]:
        """
        @return: a L{Deferred} firing with the number of live sessions.
        """


class MetricsResource(Resource):
    """
    Serves a manager's L{Metrics} and its live-session count as JSON::

        root.putChild(b"metrics", MetricsResource(sessions))

    C{GET} answers C{{"live": N, "created": ..., "destroyed": {...},
    "storeErrors": ..., "refusedFull": ..., "latency": {...}}}, with status
    200, or 503 with C{"live": null} when the database could not count.
    Counting asks the database (a C{SCAN} on Redis), so poll it every few
    seconds, not on every request, and mount it where only operators reach
    it.  For Prometheus's text format, see
    L{txsessions.prometheus.PrometheusResource}.
    """

    isLeaf = True

    def __init__(self, sessions: Counted) -> None:
        """
        @param sessions: the manager to report on.
        """
        super().__init__()
        self._sessions = sessions

    def render_GET(self, request: Request) -> object:
        """
        Answer with the figures, once the database has counted.
        """

        def figures(live: int | None) -> bytes:
            if live is None:
                request.setResponseCode(503)
            body: dict[str, Any] = {"live": live}
            body.update(self._sessions.metrics.snapshot())
            return json.dumps(body).encode("ascii") + b"\n"

        return answerWhenCounted(request, self._sessions, b"application/json", figures)


def answerWhenCounted(
    request: Request,
    sessions: Counted,
    contentType: bytes,
    figures: Callable[[int | None], bytes],
) -> object:
    """
    Answer a metrics request once the database has counted its live
    sessions; nothing is written when the client has gone meanwhile.

    @param request: the request.
    @param sessions: the manager whose database counts.
    @param contentType: the response's C{Content-Type}.
    @param figures: makes the body from the count, C{None} when the
        database could not count (a failure the manager has logged).
    @return: L{NOT_DONE_YET}, for C{render}.
    """
    request.setHeader(b"Content-Type", contentType)
    request.setHeader(b"Cache-Control", b"no-store")
    gone: list[Failure] = []
    request.notifyFinish().addErrback(gone.append)

    def counted(live: int | Failure) -> None:
        if not gone:
            request.write(figures(None if isinstance(live, Failure) else live))
            request.finish()

    sessions.count().addBoth(counted)
    return NOT_DONE_YET
