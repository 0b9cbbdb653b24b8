"""
The cost of Sessions.sessionsOf (issue 19): a user with 10 sessions among
100,000 sessions of others.

    python bench/owners.py [REDIS_URL]

In memory it times the lookup (the median of 1,000); on Redis (a
redis-server of its own on a free port unless REDIS_URL is given, which
had better be an empty database) it times it too, and counts the commands
each lookup sent, from INFO commandstats: one script, and no SCAN.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's txsessions

from twisted.internet.defer import Deferred, gatherResults  # noqa: E402
from twisted.internet.task import Clock, react  # noqa: E402

from txsessions import Sessions  # noqa: E402
from txsessions.db.memory import MemoryDatabase  # noqa: E402
from txsessions.interfaces import IDatabase, Lifetime, SessionChanges  # noqa: E402
from txsessions.records import OWNER_FIELD, OwnerMark  # noqa: E402

OTHERS = 100_000
MINE = 10


def changes(owner: str, now: float) -> SessionChanges:
    mark = OwnerMark(owner, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", now)
    return SessionChanges(
        create=True,
        lifetime=Lifetime(now, now + 3600),
        updated={"user": f'"{owner}"', OWNER_FIELD: mark.encode()},
    )


async def fill(database: IDatabase, now: float, batch: int = 1000) -> None:
    owners = [f"user{i}" for i in range(OTHERS)] + ["alice"] * MINE
    for start in range(0, len(owners), batch):
        await gatherResults(
            [
                database.save(f"k{i:07d}", changes(owners[i], now))
                for i in range(start, min(start + batch, len(owners)))
            ]
        )


def microseconds(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e6:.1f} us"


async def memory() -> None:
    clock = Clock()
    clock.advance(time.time())
    database = MemoryDatabase(clock, maxSessions=0)
    await fill(database, clock.seconds())
    sessions = Sessions(database=database, clock=clock)
    for name, lookup in [
        ("database.sessionsOf", lambda: database.sessionsOf("alice")),
        ("Sessions.sessionsOf", lambda: sessions.sessionsOf("alice")),
    ]:
        samples = []
        for _ in range(1000):
            started = time.perf_counter()
            found: list[Any] = []
            lookup().addCallback(found.append)
            samples.append(time.perf_counter() - started)
            assert len(found[0]) == MINE
        print(f"memory  {name}: {microseconds(samples)}")


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def commandstats(url: str) -> dict[str, int]:
    parts = urllib.parse.urlsplit(url)
    argv = ["redis-cli", "-h", parts.hostname or "127.0.0.1"]
    argv += ["-p", str(parts.port or 6379), "INFO", "commandstats"]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", output)
    }


async def redis(url: str) -> None:
    from twisted.internet import reactor

    from txsessions.db.redis import RedisDatabase

    database = RedisDatabase(url + "?prefix=bench-owners:")
    try:
        await fill(database, reactor.seconds())
        await database.sessionsOf("alice")  # the script's first run: EVAL
        before = commandstats(url)
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            found = await database.sessionsOf("alice")
            samples.append(time.perf_counter() - started)
            assert len(found) == MINE
        after = commandstats(url)
        sent = {
            name: (after.get(name, 0) - before.get(name, 0)) / 200
            for name in ("evalsha", "eval", "scan", "smembers", "hgetall")
        }
        print(
            f"redis   database.sessionsOf: {microseconds(samples)} "
            "(a round trip on loopback, the reactor and txredisapi included); "
            f"per lookup: {sent['evalsha'] + sent['eval']:g} script, "
            f"{sent['scan']:g} SCAN; inside it {sent['smembers']:g} SMEMBERS "
            f"and {sent['hgetall']:g} HGETALL"
        )
    finally:
        await database.close()


def main(reactor: Any, url: str | None = None) -> Deferred[None]:
    async def run() -> None:
        await memory()
        if url is not None:
            await redis(url)
            return
        directory = tempfile.mkdtemp()
        port = freePort()
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port)).close()
                    break
                except OSError:
                    time.sleep(0.05)
            await redis(f"redis://127.0.0.1:{port}/0")
        finally:
            server.terminate()
            server.wait()
            shutil.rmtree(directory, ignore_errors=True)

    return Deferred.fromCoroutine(run())


if __name__ == "__main__":
    react(main, sys.argv[1:2])
