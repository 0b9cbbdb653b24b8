"""
Redis round trips per request, for each scenario, from INFO commandstats:

    python bench/redis.py [REDIS_URL]     (default redis://127.0.0.1:6379/0)

Serves bench/servers.py's txsessions app on that Redis, sends 100 requests
per scenario, and prints the commands each request sent (a script, EVAL or
EVALSHA, to load and another to save), not counting the commands its
scripts run inside Redis, which cost no round trip.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]

import importlib.util  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "benchhttp", os.path.join(HERE, "http.py")
)
assert _spec is not None and _spec.loader is not None
benchhttp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchhttp)

TOP_LEVEL = ("eval", "evalsha")
# Every load and save is a script; the HGETALL a load script runs inside
# Redis is in commandstats too, but costs no round trip.


def commandstats(url: str) -> dict[str, int]:
    parts = urllib.parse.urlsplit(url)
    argv = [
        "redis-cli",
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 6379),
        "INFO",
        "commandstats",
    ]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", output)
    }


def main(url: str = "redis://127.0.0.1:6379/0") -> None:
    process, port = benchhttp.start("txsessions", url)
    try:
        first = urllib.request.urlopen(f"http://127.0.0.1:{port}/write")
        cookie = first.headers["Set-Cookie"].split(";")[0]
        for scenario in benchhttp.SCENARIOS:
            before = commandstats(url)
            for _ in range(100):
                request = urllib.request.Request(f"http://127.0.0.1:{port}/{scenario}")
                if scenario != "new":
                    request.add_header("Cookie", cookie)
                urllib.request.urlopen(request).read()
            after = commandstats(url)
            trips = sum(after.get(c, 0) - before.get(c, 0) for c in TOP_LEVEL) / 100
            print(f"{scenario:6} {trips:.2f} round trips per request")
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main(*sys.argv[1:])
