"""
Requests per second of txsessions beside bare Klein and the peers, with wrk.

    python bench/http.py [--seconds 5] [--rounds 3] [--redis URL]
                         [--kinds bare,sqlite,lmdb] [--scenarios write,new]

Starts each server (bench/servers.py) in turn on 127.0.0.1, drives it with
wrk for a fixed time per scenario, alternates the servers for several
rounds, and prints the median requests/s and the ratio to bare Klein
measured in the same run.  Scenarios: a returning client that reads one
value, one that writes one value, and a new client on every request.  With
--redis, txsessions on Redis is measured too (against that server; start one
with `redis-server --port 6379 --save ''`), beside bare Klein making one
round trip to Redis per request and nothing else: the most any session on
Redis could reach.  --kinds keeps only the servers named (bare Klein always
runs: the ratios are to it): bare, twisted, klein, memory, sqlite, lmdb,
redisfloor, redis; --scenarios keeps only those scenarios.  With
--commits, each txsessions server on SQLite or LMDB also reports the
transactions (fsyncs) it committed per second under wrk, the changes
each held and how long each commit took (its /commits route, read before
and after each scenario), and, where /proc tells, the CPU time its reactor
thread and its other threads (the writer) spent per request and how often
the other threads slept per commit (waiting for a batch, for the disk or
for the interpreter lock).  The reactor's CPU time per request beside the wall
time per request (1/rate) tells a reactor short of CPU from one left
waiting for commits; beside the memory database's, what the persistent
database adds to each request.
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


def shortName(kind: str, url: str | None) -> str:
    """
    @return: what --kinds calls a server: its kind, or for txsessions its
        database's scheme.
    """
    if kind == "txsessions" and url:
        return url.split(":")[0]
    return kind


def commits(port: int) -> tuple[int, int, float]:
    """
    @return: how many transactions the server's database has committed, how
        many changes they held, and how many seconds it spent committing.
    """
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/commits") as response:
        done, changes, seconds = response.read().split()
    return int(done), int(changes), float(seconds)


def threadTimes(pid: int) -> dict[int, tuple[float, int]]:
    """
    @return: for each thread of process C{pid}, the CPU seconds it has
        used (user and system) and how many times it has slept (voluntary
        context switches); nothing where /proc does not tell.
    """
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[float, int]] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                # Fields after the command's closing parenthesis: utime and
                # stime are the 12th and 13th.
                fields = f.read().rpartition(")")[2].split()
            with open(f"/proc/{pid}/task/{task}/status") as f:
                status = f.read()
        except OSError:
            continue
        sleeps = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M)
        cpu = (int(fields[11]) + int(fields[12])) / tick
        found[int(task)] = (cpu, int(sleeps.group(1)) if sleeps else 0)
    return found


def cpuShares(
    pid: int,
    before: dict[int, tuple[float, int]],
    after: dict[int, tuple[float, int]],
    requests: float,
    done: int,
) -> str:
    """
    @return: the reactor thread's and the other threads' CPU time per
        request, and the other threads' sleeps per commit, between two
        L{threadTimes}.
    """
    if not before or not after or not requests:
        return ""
    spent = {t: after[t][0] - before.get(t, (0.0, 0))[0] for t in after}
    slept = sum(after[t][1] - before.get(t, (0.0, 0))[1] for t in after if t != pid)
    others = sum(v for t, v in spent.items() if t != pid)
    return (
        f", reactor {1e6 * spent.get(pid, 0.0) / requests:.0f} us CPU/request, "
        f"other threads {1e6 * others / requests:.0f} us, "
        f"{slept / max(done, 1):.1f} sleeps/commit"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--kinds", default="")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--commits", action="store_true")
    options = parser.parse_args()
    scenarios = {s: SCENARIOS[s] for s in options.scenarios.split(",")}
    tmp = tempfile.mkdtemp()
    servers: list[tuple[str, str, str | None]] = [  # name, kind, URL
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
    if options.kinds:
        kept = {"bare", *options.kinds.split(",")}
        servers = [s for s in servers if shortName(s[1], s[2]) in kept]
    results: dict[tuple[str, str], list[float]] = {}
    counted = options.commits and {"sqlite", "lmdb"}
    for _ in range(options.rounds):
        for name, kind, url in servers:
            process, port = start(kind, url)
            try:
                cookie = cookieFor(port)
                for scenario, path in scenarios.items():
                    sent = None if scenario == "new" else cookie
                    counting = counted and shortName(kind, url) in counted
                    if counting:
                        before = commits(port)
                        timesBefore = threadTimes(process.pid)
                    rate = wrk(port, path, options.seconds, sent)
                    if counting:
                        timesAfter = threadTimes(process.pid)
                        after = commits(port)
                        done = after[0] - before[0]
                        changes = after[1] - before[1]
                        seconds = after[2] - before[2]
                        shares = cpuShares(
                            process.pid,
                            timesBefore,
                            timesAfter,
                            rate * options.seconds,
                            done,
                        )
                        print(
                            f"{name} {scenario}: {rate:.0f} req/s, "
                            f"{done / options.seconds:.0f} commits/s, "
                            f"{changes / max(done, 1):.1f} changes each, "
                            f"{1000 * seconds / max(done, 1):.2f} ms each"
                            f"{shares}",
                            flush=True,
                        )
                    results.setdefault((name, scenario), []).append(rate)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop on SIGTERM; killed", file=sys.stderr)
                    process.kill()
                    process.wait()
    print(f"{'server':24} " + " ".join(f"{s:>16}" for s in scenarios))
    for name, _, _ in servers:
        cells = []
        for scenario in scenarios:
            median = statistics.median(results[(name, scenario)])
            base = statistics.median(results[("bare Klein", scenario)])
            cells.append(f"{median:8.0f} {median / base:5.2f}x")
        print(f"{name:24} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
