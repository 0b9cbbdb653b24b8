"""
What the request path's layers cost: Python function calls per request,
txsessions' own by module, and what one call costs in instructions.

    python bench/calls.py

Each server of bench/servers.py (memory database for txsessions) answers
requests on one keep-alive connection over an in-memory transport, as
bench/instructions.py serves them; a profile hook counts the Python
functions entered per request (C functions apart), for bare Klein and for
txsessions.  Then valgrind (Debian package valgrind) counts the
instructions of a loop calling a function of four arguments, a method of
three, and a property, beside an empty loop: the cost of a call itself,
its body empty, on this Python.  Calls times that cost is what folding
the path into fewer functions could save at most, besides the work the
calls do.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, HERE)  # servers, which puts this checkout's txsessions first

from instructions import warmedUp  # noqa: E402
from servers import SCENARIOS, resource  # noqa: E402

REQUESTS = 200

_LOOP = """
import sys
def f(a, b, c, d): return a
class C:
    def m(self, a, b, c): return a
    @property
    def p(self): return a
c, a = C(), 1
for i in range({n}):
    {body}
"""

BODIES = {
    "loop": "pass",
    "function(4)": "f(i, 1, 2, 3)",
    "method(3)": "c.m(i, 1, 2)",
    "property": "c.p",
}


def calls(kind: str, scenario: str) -> collections.Counter[str]:
    """
    @return: the Python functions entered per request of C{scenario} on
        server C{kind}, by module for txsessions' own, under "other" for
        the rest.
    """
    from twisted.web.server import Site

    site = Site(resource(kind))
    site.noisy = False
    protocol, transport, data = warmedUp(site, scenario)
    counted: collections.Counter[str] = collections.Counter()

    def hook(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            name = frame.f_code.co_filename
            own = name.rpartition("/txsessions/")[2] if "/txsessions/" in name else ""
            counted[own or "other"] += 1

    sys.setprofile(hook)
    for _ in range(REQUESTS):
        protocol.dataReceived(data)
        transport.clear()
    sys.setprofile(None)
    return counted


def instructions(body: str, n: int) -> int:
    code = _LOOP.format(n=n, body=body)
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    env = dict(os.environ, PYTHONHASHSEED="0")
    output = subprocess.run(
        [*argv, sys.executable, "-c", code], capture_output=True, text=True, env=env
    ).stderr
    found = re.search(r"Collected : (\d+)", output)
    if found is None:
        raise RuntimeError(f"valgrind printed no count:\n{output}")
    return int(found.group(1))


def main() -> None:
    print("Python calls per request (bench/servers.py, memory database)")
    for scenario in SCENARIOS:
        bare = calls("bare", scenario)
        ours = calls("txsessions", scenario)
        own = {k: v / REQUESTS for k, v in ours.items() if k != "other"}
        extra = (ours["other"] - bare["other"]) / REQUESTS
        ranked = sorted(own.items(), key=lambda item: -item[1])
        modules = ", ".join(f"{k} {v:g}" for k, v in ranked)
        print(
            f"{scenario:6} bare {bare['other'] / REQUESTS:g}; txsessions' own "
            f"{sum(own.values()):g} ({modules}); others' more {extra:g}"
        )
    per = {
        name: (instructions(body, 200_000) - instructions(body, 100_000)) / 100_000
        for name, body in BODIES.items()
    }
    print("instructions per call, the loop's own taken off:")
    for name in BODIES:
        if name != "loop":
            print(f"  {name:12} {per[name] - per['loop']:6.0f}")


if __name__ == "__main__":
    main()
