# -*- test-case-name: tests.test_metrics -*-
"""
L{PrometheusResource}: a manager's L{Metrics<txsessions.metrics.Metrics>}
in the text format Prometheus scrapes, through C{prometheus_client} (the
C{prometheus} extra: C{pip install 'txsessions[prometheus]'}).

The same figures as the JSON resource, under these names::

    txsessions_sessions_live                    gauge (absent when the
                                                database could not count)
    txsessions_sessions_created_total           counter
    txsessions_sessions_destroyed_total{reason} counter
    txsessions_store_errors_total               counter
    txsessions_refused_full_total               counter
    txsessions_database_call_seconds{kind}      histogram (load, save, other)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from twisted.web.resource import Resource

from .db import missingExtra
from .metrics import answerWhenCounted
from .records import DestroyReason

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
    )
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as e:
    # Without the extra: say which, and the pip line, as twistd does.
    raise missingExtra("prometheus", e) from None

if TYPE_CHECKING:
    from twisted.web.server import Request

    from .manager import Sessions


class SessionsCollector:
    """
    A C{prometheus_client} collector of one manager's figures.

    @ivar live: the live sessions counted last, or C{None}.
    """

    def __init__(self, sessions: Sessions) -> None:
        """
        @param sessions: the manager to report on.
        """
        self._sessions = sessions
        self.live: int | None = None

    def collect(self) -> Iterator[Metric]:
        """
        @return: the metric families, as C{prometheus_client} asks for them.
        """
        metrics = self._sessions.metrics
        if self.live is not None:
            yield GaugeMetricFamily(
                "txsessions_sessions_live", "Live sessions.", value=self.live
            )
        yield CounterMetricFamily(
            "txsessions_sessions_created",
            "Sessions this process created.",
            value=metrics.created,
        )
        destroyed = CounterMetricFamily(
            "txsessions_sessions_destroyed",
            "Sessions the database destroyed, by reason.",
            labels=["reason"],
        )
        for reason in DestroyReason:
            destroyed.add_metric([reason.value], metrics.destroyed[reason.value])
        yield destroyed
        yield CounterMetricFamily(
            "txsessions_store_errors",
            "Database calls that failed or did not answer in time.",
            value=metrics.storeErrors,
        )
        yield CounterMetricFamily(
            "txsessions_refused_full",
            "New sessions refused because the database was full.",
            value=metrics.refusedFull,
        )
        latency = HistogramMetricFamily(
            "txsessions_database_call_seconds",
            "How long database calls took, by kind.",
            labels=["kind"],
        )
        for kind, window in metrics.latency.items():
            latency.add_metric(
                [kind],
                [(_bound(bound), count) for bound, count in window.histogram()],
                sum_value=window.total,
            )
        yield latency


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class PrometheusResource(Resource):
    """
    Serves a manager's figures in Prometheus's text exposition format::

        root.putChild(b"metrics", PrometheusResource(sessions))

    Each C{GET} counts the live sessions first (a C{SCAN} on Redis): give
    Prometheus a scrape interval of several seconds, and mount it where only
    operators reach it.  When the database cannot count, the other figures
    are served without C{txsessions_sessions_live}.
    """

    isLeaf = True

    def __init__(self, sessions: Sessions) -> None:
        """
        @param sessions: the manager to report on.
        """
        super().__init__()
        self._sessions = sessions
        self._collector = SessionsCollector(sessions)
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)

    def render_GET(self, request: Request) -> object:
        """
        Answer with the figures, once the database has counted.
        """

        def figures(live: int | None) -> bytes:
            self._collector.live = live
            return bytes(generate_latest(self._registry))

        return answerWhenCounted(
            request, self._sessions, CONTENT_TYPE_LATEST.encode("ascii"), figures
        )
