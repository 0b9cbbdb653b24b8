"""
What a manager counts and logs, and the JSON resource that serves it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from zope.interface import provider

from tests.apps import kvBrowser
from tests.support import COOKIE, Browser, ControlledDatabase, login, resultOf
from txsessions import Config, Sessions
from txsessions.ids import storeKey
from txsessions.metrics import WINDOW, Latency, MetricsResource


@pytest.fixture
def logged() -> Iterator[list[LogEvent]]:
    """
    The txsessions events logged during the test (those with a
    C{sessionEvent} field).
    """
    events: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if "sessionEvent" in event:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def metricsBrowser(sessions: Sessions) -> Browser:
    root = Resource()
    root.putChild(b"metrics", MetricsResource(sessions))
    return Browser(root)


def test_createdCountedOnceSaved(browser: Browser, sessions: Sessions) -> None:
    browser.get("/get/a")
    assert sessions.metrics.created == 0
    sid = login(browser)
    browser.get("/set/b/2", {COOKIE: sid})
    assert sessions.metrics.created == 1


def test_destroyedCountedByReason(
    browser: Browser, sessions: Sessions, clock: Any
) -> None:
    browser.get("/destroy", {COOKIE: login(browser)})
    resultOf(sessions.destroyByID(login(browser)))
    login(browser)
    clock.advance(10)
    assert sessions.metrics.snapshot()["destroyed"] == {
        "destroyed": 1,
        "destroyByID": 1,
        "expired": 1,
        "destroyAll": 0,
        "regenerated": 0,
        "admin": 0,
        "owner": 0,
    }


def test_storeErrorsCounted(
    browser: Browser, sessions: Sessions, db: ControlledDatabase
) -> None:
    sid = login(browser)
    db.failLoads = True
    response, _ = browser.get("/get/a", {COOKIE: sid})
    assert response.code == 503
    db.failLoads, db.failSaves = False, True
    response, _ = browser.get("/set/a/1", {COOKIE: sid})
    assert response.code == 503
    assert sessions.metrics.storeErrors == 2


def test_latencyOfLoadsAndSaves(browser: Browser, sessions: Sessions) -> None:
    sid = login(browser)
    browser.get("/set/a/1", {COOKIE: sid})
    latency = sessions.metrics.snapshot()["latency"]
    assert latency["load"]["calls"] == 1
    assert latency["save"]["calls"] == 2
    assert latency["load"]["max_ms"] >= latency["load"]["p50_ms"] >= 0


def test_latencySummary() -> None:
    latency = Latency()
    assert latency.summary() == {
        "calls": 0,
        "p50_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }
    for ms in range(1, 101):
        latency.add(ms / 1000)
    assert latency.summary() == {
        "calls": 100,
        "p50_ms": 51.0,
        "p99_ms": 100.0,
        "max_ms": 100.0,
    }


def test_latencyWindowKeepsTheLatestCalls() -> None:
    latency = Latency()
    for _ in range(WINDOW):
        latency.add(1.0)
    for _ in range(WINDOW):
        latency.add(0.001)
    summary = latency.summary()
    assert summary["calls"] == 2 * WINDOW
    assert summary["max_ms"] == 1.0


def test_eventsLoggedWithoutFullKeys(
    clock: Any, db: ControlledDatabase, logged: Any
) -> None:
    config = Config(cookie=COOKIE, expires=10, logSessionEvents=True)
    sessions = Sessions(config, db, clock)
    browser = kvBrowser(sessions)
    sid = login(browser)
    browser.get("/regenerate", {COOKIE: sid})
    db.failLoads = True
    browser.get("/get/a", {COOKIE: sid})
    db.failLoads = False
    resultOf(sessions.destroyAll())
    kinds = [event["sessionEvent"] for event in logged]
    assert kinds == ["created", "destroyed", "regenerated", "storeError", "destroyed"]
    assert [e["reason"] for e in logged if "reason" in e] == [
        "regenerated",
        "destroyAll",
    ]
    key = storeKey(sid)
    for event in logged:
        assert sid not in repr(event) and key not in repr(event)
        if "key" in event:
            assert len(event["key"]) < 16


def test_metricsResource(browser: Browser, sessions: Sessions) -> None:
    login(browser)
    login(browser)
    response, body = metricsBrowser(sessions).get("/metrics")
    assert response.code == 200
    assert response.headers.getRawHeaders(b"content-type") == [b"application/json"]
    figures = json.loads(body)
    assert figures["live"] == 2
    assert figures["created"] == 2
    assert figures["storeErrors"] == 0
    assert set(figures["latency"]) == {"load", "save", "other"}


def test_metricsResourceWhenTheDatabaseFails(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    db.memory.count = lambda: db.memory.load("broken").addCallback(  # type: ignore[method-assign]
        lambda _: 1 // 0
    )
    response, body = metricsBrowser(sessions).get("/metrics")
    assert response.code == 503
    figures = json.loads(body)
    assert figures["live"] is None
    assert figures["storeErrors"] == 1


@pytest_twisted.ensureDeferred
async def test_metricsOverARealPort(listen: Any, clock: Any) -> None:
    sessions = Sessions(clock=clock)
    root = Resource()
    root.putChild(b"metrics", MetricsResource(sessions))
    base, client = listen(root)
    response = await client.get(base + "/metrics")
    assert response.code == 200
    figures = json.loads(await treq.content(response))
    assert figures["live"] == 0


def test_givenUpCallsAreNoStoreErrors(sessions: Sessions) -> None:
    """
    A call cancelled because its request was given up (the client went
    away, and Klein cancelled the handler) is not the database's failure.
    """
    waiting: Deferred[None] = Deferred()
    call = sessions.parts.calls.call(waiting, "load")
    call.cancel()
    assert isinstance(call.result, Failure) and call.result.check(CancelledError)
    call.addErrback(lambda _: None)
    assert sessions.metrics.storeErrors == 0


def test_aCallCancelledBeforeItReturnedIsNoStoreError(sessions: Sessions) -> None:
    cancelled: Deferred[None] = Deferred()
    cancelled.cancel()
    with pytest.raises(CancelledError):
        sessions.parts.calls.now(cancelled, "load", 0.0)
    assert sessions.metrics.storeErrors == 0


def prometheusFigures(sessions: Sessions) -> dict[str, float]:
    """
    Scrape a L{PrometheusResource}: each sample's name and labels, as
    C{name{label="value"}}, to its value.
    """
    from prometheus_client.parser import text_string_to_metric_families

    from txsessions.prometheus import PrometheusResource

    root = Resource()
    root.putChild(b"metrics", PrometheusResource(sessions))
    response, body = Browser(root).get("/metrics")
    assert response.code == 200
    [contentType] = response.headers.getRawHeaders(b"content-type")
    assert contentType.startswith(b"text/plain; version=")
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            figures[f"{sample.name}{{{labels}}}" if labels else sample.name] = (
                sample.value
            )
    return figures


def test_prometheusServesTheSameFiguresAsJSON(
    browser: Browser, sessions: Sessions, clock: Any
) -> None:
    sid = login(browser)
    login(browser)
    browser.get("/destroy", {COOKIE: sid})
    _, body = metricsBrowser(sessions).get("/metrics")
    assert json.loads(body)["live"] == 1
    figures = prometheusFigures(sessions)
    snapshot = sessions.metrics.snapshot()  # what the JSON resource serves
    assert figures["txsessions_sessions_live"] == 1
    assert figures["txsessions_sessions_created_total"] == snapshot["created"] == 2
    for reason, count in snapshot["destroyed"].items():
        assert figures[f'txsessions_sessions_destroyed_total{{reason="{reason}"}}'] == (
            count
        )
    assert snapshot["destroyed"]["destroyed"] == 1
    assert figures["txsessions_store_errors_total"] == snapshot["storeErrors"] == 0
    for kind, summary in snapshot["latency"].items():
        key = f'txsessions_database_call_seconds_count{{kind="{kind}"}}'
        assert figures[key] == summary["calls"]
        inf = f'txsessions_database_call_seconds_bucket{{kind="{kind}",le="+Inf"}}'
        assert figures[inf] == summary["calls"]
    assert snapshot["latency"]["load"]["calls"] > 0


def test_latencyHistogramCountsEachCallInItsBucket() -> None:
    from txsessions.metrics import BUCKETS

    latency = Latency()
    for seconds in (0.0001, 0.001, 0.003, 100.0):
        latency.add(seconds)
    histogram = dict(latency.histogram())
    assert histogram[0.0005] == 1
    assert histogram[0.001] == 2  # a bucket holds what is at most its bound
    assert histogram[0.005] == 3
    assert histogram[BUCKETS[-1]] == 3
    assert histogram[float("inf")] == 4
    assert latency.total == pytest.approx(100.0041)


def test_prometheusWithoutALiveCountWhenTheDatabaseFails(
    sessions: Sessions, db: ControlledDatabase
) -> None:
    db.memory.count = lambda: db.memory.load("broken").addCallback(  # type: ignore[method-assign]
        lambda _: 1 // 0
    )
    figures = prometheusFigures(sessions)
    assert "txsessions_sessions_live" not in figures
    assert figures["txsessions_store_errors_total"] == 1


def test_aFullDatabaseIsCountedApartFromStoreErrors(
    clock: Any, logged: list[LogEvent]
) -> None:
    """
    A new session refused by a full database (C{maxSessions}) was counted
    in C{storeErrors} and logged as an error, "the session database
    failed", on every refused request: it is no outage.
    """
    from twisted.logger import LogLevel

    from txsessions.db.memory import MemoryDatabase

    sessions = Sessions(Config(cookie=COOKIE), MemoryDatabase(maxSessions=1), clock)
    browser = kvBrowser(sessions)
    login(browser)
    codes = [browser.get("/set/user/bob")[0].code for _ in range(2)]
    assert codes == [503, 503]
    assert (sessions.metrics.storeErrors, sessions.metrics.refusedFull) == (0, 2)
    assert [(e["sessionEvent"], e["log_level"]) for e in logged] == [
        ("refusedFull", LogLevel.warn),
        ("refusedFull", LogLevel.warn),
    ]
    _, body = metricsBrowser(sessions).get("/metrics")
    assert json.loads(body)["refusedFull"] == 2
    figures = prometheusFigures(sessions)
    assert figures["txsessions_refused_full_total"] == 2
    assert figures["txsessions_store_errors_total"] == 0


def test_prometheusWithoutItsExtraNamesThePipLine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    Without the extra, importing L{txsessions.prometheus} was a bare
    C{ModuleNotFoundError} naming C{prometheus_client}, with no pip line.
    """
    import sys

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "txsessions.prometheus", raising=False)
    with pytest.raises(ImportError) as caught:
        import txsessions.prometheus  # noqa: F401
    assert str(caught.value) == (
        "Prometheus metrics need the prometheus extra (no module "
        "prometheus_client): pip install 'txsessions[prometheus]'"
    )
