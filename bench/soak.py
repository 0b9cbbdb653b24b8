"""
A soak test: several server processes on one SQLite file, and several on one
Redis, under mixed traffic for about a minute, then an audit.

    python bench/soak.py [--seconds 60] [--servers 3] [--clients 8]

Everything listens on 127.0.0.1 (a redis-server of its own on a free port,
without persistence).  Each client owns one session at a time and, one
request after another, against any of its store's servers, reads it, writes
a value, increments a counter, or regenerates its id; meanwhile the admin
command (C{txsessions destroy}) destroys a client's session now and then,
while that client's requests run.  The audit then checks:

  - every increment acknowledged (a 200) is counted exactly once: the
    values the increments returned in a session's life are 1, 2, ..., k,
    and the session holds k at the end (a 503 never counts, and must not
    have been applied);
  - no destroyed session is readable once its destroy has returned and the
    request then in flight has ended;
  - no response is a 500 (nor anything but 200 and 503).

It prints the figures and exits 1 if any check failed.
"""

from __future__ import annotations

import os
import sys

# bench/http.py hides the standard library's http package from the modules
# below: take this folder off the path before importing them.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, port: str) -> None:
    """
    One server: the routes below, under txsessions on C{url}.
    """
    from klein import Klein
    from twisted.internet import reactor
    from twisted.web.server import Site

    import txsessions
    from txsessions import Config, Sessions
    from txsessions.db import openDatabase

    config = Config(cookie="soak", expires=3600, databaseTimeout=3.0)
    sessions = Sessions(config, openDatabase(url, timeout=config.databaseTimeout))
    app = Klein()

    @app.route("/start/<tag>")
    def start(request: Any, tag: str) -> str:
        txsessions.get(request).set("tag", tag)
        return "ok"

    @app.route("/read")
    def read(request: Any) -> str:
        session = txsessions.get(request)
        return json.dumps({"tag": session.get("tag"), "n": session.get("n")})

    @app.route("/write")
    def write(request: Any) -> str:
        txsessions.get(request).set("v", random.random())
        return "ok"

    @app.route("/incr")
    async def incr(request: Any) -> str:
        return str(await txsessions.get(request).increment("n", 1))

    @app.route("/regen")
    async def regen(request: Any) -> str:
        await txsessions.get(request).regenerate()
        return "ok"

    running: Any = reactor
    site = Site(sessions.wrap(app.resource()))
    site.noisy = False
    running.listenTCP(int(port), site, backlog=1024, interface="127.0.0.1")
    print("ready", flush=True)
    running.run()


class Store:
    """
    One database and the servers on it, with the figures of its run.
    """

    def __init__(self, name: str, url: str, servers: int) -> None:
        self.name = name
        self.url = url
        self.processes: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []
        for _ in range(servers):
            port = freePort()
            process = subprocess.Popen(
                [sys.executable, __file__, "serve", url, str(port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a server on {url} did not start")
            self.processes.append(process)
            self.ports.append(port)
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.failures: list[str] = []
        self.destroys = 0
        self.missed = 0
        self.acknowledged = 0
        self.lock = threading.Lock()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)


class Client:
    """
    One user: one session at a time, one request after another.
    """

    def __init__(self, store: Store, number: int) -> None:
        self.store = store
        self.number = number
        self.lock = threading.Lock()
        self.cookie = ""
        self.generation = 0
        self.acked: list[int] = []
        self.destroyed = False

    def request(self, path: str, cookie: str | None = None) -> tuple[int, str]:
        port = random.choice(self.store.ports)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            sent = self.cookie if cookie is None else cookie
            headers = {"Cookie": f"soak={sent}"} if sent else {}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read().decode()
            if cookie is None:
                for header, value in response.getheaders():
                    if header.lower() == "set-cookie" and value.startswith("soak="):
                        self.cookie = value.split(";")[0][len("soak=") :]
            kind = path.split("/")[1]
            with self.store.lock:
                self.store.statuses[(kind, response.status)] += 1
            if response.status not in (200, 503):
                self.store.fail(f"{path} answered {response.status}: {body[:200]}")
            return response.status, body
        finally:
            connection.close()

    def begin(self) -> None:
        self.cookie = ""
        self.generation += 1
        self.acked = []
        self.destroyed = False
        tag = f"c{self.number}g{self.generation}"
        while self.request(f"/start/{tag}")[0] != 200:
            pass
        self.tag = tag

    def step(self) -> None:
        with self.lock:
            if self.destroyed:
                self.begin()
            op = random.choices(
                ["read", "write", "incr", "regen"], weights=[40, 20, 38, 2]
            )[0]
            status, body = self.request("/" + op)
            if status == 200 and op == "incr":
                self.acked.append(int(body))
                with self.store.lock:
                    self.store.acknowledged += 1

    def audit(self) -> None:
        if self.destroyed:
            return
        status, body = self.request("/read")
        if status != 200:
            self.store.fail(f"the final read of {self.tag} answered {status}")
            return
        read = json.loads(body)
        if read["tag"] != self.tag:
            self.store.fail(f"{self.tag} lost its session: {read}")
            return
        if sorted(self.acked) != list(range(1, len(self.acked) + 1)):
            self.store.fail(f"{self.tag}: increments returned {sorted(self.acked)}")
        if (read["n"] or 0) != len(self.acked):
            self.store.fail(
                f"{self.tag}: {len(self.acked)} increments acknowledged, "
                f"{read['n']} counted"
            )


DESTROYERS = 4
"""
How many admin commands run at once, on each database.
"""


def destroyer(store: Store, clients: list[Client], until: float) -> None:
    """
    Now and then, destroy a client's session with the admin command while
    that client's requests run; then check nothing can read it.
    """
    admin = os.path.join(os.path.dirname(sys.executable), "txsessions")
    while time.monotonic() < until:
        client = random.choice(clients)
        victim = client.cookie
        if not victim:
            continue
        done = subprocess.run(
            [admin, "--database", store.url, "--timeout", "10", "destroy", victim],
            capture_output=True,
            text=True,
        )
        if done.returncode == 1:
            with store.lock:
                store.missed += 1
            continue  # regenerated or destroyed meanwhile
        if done.returncode != 0:
            store.fail(f"txsessions destroy failed: {done.stderr.strip()}")
            continue
        with client.lock:  # the request in flight has ended
            status, body = client.request("/read", cookie=victim)
            if status == 200 and json.loads(body)["tag"] is not None:
                store.fail(f"a destroyed session was readable: {body}")
            client.destroyed = True
            with store.lock:
                store.destroys += 1


def run(store: Store, clientCount: int, seconds: float) -> None:
    clients = [Client(store, i) for i in range(clientCount)]
    for client in clients:
        client.begin()
    until = time.monotonic() + seconds

    def drive(client: Client) -> None:
        while time.monotonic() < until:
            try:
                client.step()
            except Exception as e:  # a refused connection, a timeout
                store.fail(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=drive, args=(c,)) for c in clients]
    threads += [
        threading.Thread(target=destroyer, args=(store, clients, until))
        for _ in range(DESTROYERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.audit()


def report(store: Store, seconds: float) -> None:
    total = sum(store.statuses.values())
    byStatus = Counter[int]()
    for (_, status), n in store.statuses.items():
        byStatus[status] += n
    print(
        f"{store.name}: {len(store.ports)} servers, {total} requests in "
        f"{seconds:.0f} s ({total / seconds:.0f}/s)"
    )
    kinds = sorted({kind for kind, _ in store.statuses})
    print(
        "  by route: "
        + ", ".join(
            f"{kind} {sum(n for (k, _), n in store.statuses.items() if k == kind)}"
            for kind in kinds
        )
    )
    print(f"  by status: {dict(sorted(byStatus.items()))}")
    print(
        f"  increments acknowledged: {store.acknowledged}; admin destroys: "
        f"{store.destroys}"
    )
    print(f"  audit: {'passed' if not store.failures else 'FAILED'}")
    for failure in store.failures[:20]:
        print(f"    {failure}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args()
    tmp = tempfile.mkdtemp()
    redisPort = freePort()
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(redisPort),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    stores: list[Store] = []
    try:
        assert redis.stdout is not None
        for line in redis.stdout:
            if "Ready to accept connections" in line:
                break
        stores = [
            Store("sqlite", f"sqlite:{tmp}/soak.db", options.servers),
            Store("redis", f"redis://127.0.0.1:{redisPort}/0", options.servers),
        ]
        runners = [
            threading.Thread(target=run, args=(s, options.clients, options.seconds))
            for s in stores
        ]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
    finally:
        for store in stores:
            store.stop()
        redis.terminate()
        redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    for store in stores:
        report(store, options.seconds)
    sys.exit(1 if any(store.failures for store in stores) else 0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(*sys.argv[2:4])
    else:
        main()
