"""
Requests per second of txsessions beside bare Klein and the peers, with wrk.

    python bench/http.py [--seconds 5] [--rounds 3] [--redis URL]

Starts each server (bench/servers.py) in turn on 127.0.0.1, drives it with
wrk for a fixed time per scenario, alternates the servers for several
rounds, and prints the median requests/s and the ratio to bare Klein
measured in the same run.  Scenarios: a returning client that reads one
value, one that writes one value, and a new client on every request.  With
--redis, txsessions on Redis is measured too (against that server; start one
with `redis-server --port 6379 --save ''`), beside bare Klein making one
round trip to Redis per request and nothing else: the most any session on
Redis could reach.
"""

from __future__ import annotations

import os
import sys

# This file's name hides the standard library's http package from the
# modules below: take its folder off the path before importing them.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import urllib.request  # noqa: E402

SCENARIOS = {"read": "/read", "write": "/write", "new": "/new"}


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, url: str | None) -> tuple[subprocess.Popen[str], int]:
    port = freePort()
    argv = [sys.executable, os.path.join(HERE, "servers.py"), kind, str(port)]
    if url:
        argv.append(url)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"{kind} did not start")
    return process, port


def cookieFor(port: int) -> str:
    response = urllib.request.urlopen(f"http://127.0.0.1:{port}/write")
    cookie: str = response.headers.get("Set-Cookie", "")
    return cookie.split(";")[0]


def wrk(port: int, path: str, seconds: int, cookie: str | None) -> float:
    argv = ["wrk", "-t1", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"]
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses on {path}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=None)
    options = parser.parse_args()
    tmp = tempfile.mkdtemp()
    servers: list[tuple[str, str, str | None]] = [
        ("bare Klein", "bare", None),
        ("Twisted getSession", "twisted", None),
        ("Klein SessionProcurer", "klein", None),
        ("txsessions memory", "txsessions", "memory:"),
        ("txsessions sqlite", "txsessions", f"sqlite:{tmp}/s.db"),
        ("txsessions lmdb", "txsessions", f"lmdb:{tmp}/l"),
    ]
    if options.redis:
        servers.append(("Klein + Redis round trip", "redisfloor", options.redis))
        servers.append(("txsessions redis", "txsessions", options.redis))
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(options.rounds):
        for name, kind, url in servers:
            process, port = start(kind, url)
            try:
                cookie = cookieFor(port)
                for scenario, path in SCENARIOS.items():
                    sent = None if scenario == "new" else cookie
                    rate = wrk(port, path, options.seconds, sent)
                    results.setdefault((name, scenario), []).append(rate)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop on SIGTERM; killed", file=sys.stderr)
                    process.kill()
                    process.wait()
    print(f"{'server':24} " + " ".join(f"{s:>16}" for s in SCENARIOS))
    for name, _, _ in servers:
        cells = []
        for scenario in SCENARIOS:
            median = statistics.median(results[(name, scenario)])
            base = statistics.median(results[("bare Klein", scenario)])
            cells.append(f"{median:8.0f} {median / base:5.2f}x")
        print(f"{name:24} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
