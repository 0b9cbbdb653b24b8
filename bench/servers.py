"""
The servers bench/http.py measures, one per process:

    python bench/servers.py KIND PORT [DATABASE_URL]

KIND is bare (Klein, no sessions: the baseline), twisted (Twisted's own
request.getSession()), klein (Klein's SessionProcurer with its
MemorySessionStore), txsessions (with DATABASE_URL, memory: by default) or
redisfloor (bare Klein plus one Redis round trip per request, DATABASE_URL
a redis:// URL).
Each serves /read (read one value), /write (write one value) and /new (a new
session on every request, for clients that send no cookie).  txsessions on
SQLite or LMDB also serves /commits: how many transactions its writer has
committed, how many changes they held and how many seconds it spent
committing them, for bench/http.py --commits.
"""

from __future__ import annotations

import gc
import os
import sys

# bench/http.py would hide the standard library's http package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's txsessions

from typing import Any  # noqa: E402

from klein import Klein  # noqa: E402
from twisted.internet import reactor  # noqa: E402
from twisted.web.server import Site  # noqa: E402

SCENARIOS = ("read", "write", "new")
"""
The routes each server has, one per scenario.
"""


def bare() -> Any:
    app = Klein()

    @app.route("/read")
    def read(request: Any) -> str:
        return "0"

    @app.route("/write")
    def write(request: Any) -> str:
        return "1"

    @app.route("/new")
    def new(request: Any) -> str:
        return "1"

    return app.resource()


def twisted() -> Any:
    app = Klein()

    def values(request: Any) -> dict[str, Any]:
        session = request.getSession()
        if not hasattr(session, "values"):
            session.values = {}
        return session.values  # type: ignore[no-any-return]

    @app.route("/read")
    def read(request: Any) -> str:
        return str(values(request).get("n", 0))

    @app.route("/write")
    def write(request: Any) -> str:
        data = values(request)
        data["n"] = data.get("n", 0) + 1
        return str(data["n"])

    @app.route("/new")
    def new(request: Any) -> str:
        values(request)["n"] = 1
        return "1"

    return app.resource()


def klein() -> Any:
    from klein import SessionProcurer
    from klein.storage.memory import MemorySessionStore

    app = Klein()
    procurer = SessionProcurer(
        MemorySessionStore(), secureCookie=b"s", insecureCookie=b"s"
    )
    data: dict[str, dict[str, int]] = {}

    async def values(request: Any) -> dict[str, int]:
        session = await procurer.procureSession(request)
        return data.setdefault(session.identifier, {})

    @app.route("/read")
    async def read(request: Any) -> str:
        return str((await values(request)).get("n", 0))

    @app.route("/write")
    async def write(request: Any) -> str:
        v = await values(request)
        v["n"] = v.get("n", 0) + 1
        return str(v["n"])

    @app.route("/new")
    async def new(request: Any) -> str:
        (await values(request))["n"] = 1
        return "1"

    return app.resource()


def txsessions(url: str) -> Any:
    from txsessions import Config, Sessions
    from txsessions.db import openDatabase

    database = openDatabase(url)
    sessions = Sessions(Config(cookie="s", expires=3600), database)
    app = Klein()

    writer = getattr(database, "writer", None)
    if writer is not None:

        @app.route("/commits")
        def commits(request: Any) -> str:
            return f"{writer.commits} {writer.changes} {writer.committing}"

    @app.route("/read")
    @sessions.withSession
    def read(request: Any, session: Any) -> str:
        return str(session.getIntDefault("n", 0))

    @app.route("/write")
    @sessions.withSession
    def write(request: Any, session: Any) -> str:
        n = session.getIntDefault("n", 0) + 1
        session.set("n", n)
        return str(n)

    @app.route("/new")
    @sessions.withSession
    def new(request: Any, session: Any) -> str:
        session.set("n", 1)
        return "1"

    return app.resource()


def redisfloor(url: str) -> Any:
    """
    Bare Klein plus one Redis round trip per request: each route loads a
    key no session has, through txsessions' own Redis client (one
    C{EVALSHA}), and does nothing else.  No session on Redis can be served
    faster than this.
    """
    from txsessions.db.redis import RedisDatabase

    database = RedisDatabase(url)
    app = Klein()
    missing = "0" * 64

    async def roundTrip(request: Any) -> str:
        await database.load(missing)
        return "0"

    for scenario in SCENARIOS:
        app.route("/" + scenario, endpoint=scenario)(roundTrip)
    return app.resource()


def resource(kind: str, url: str = "memory:") -> Any:
    """
    The resource of one server: C{kind} as the module docstring lists them,
    with C{url} for txsessions and redisfloor.
    """
    if kind in ("txsessions", "redisfloor"):
        return globals()[kind](url)
    return globals()[kind]()


def main(kind: str, port: str, url: str = "memory:") -> None:
    site = Site(resource(kind, url))
    site.noisy = False
    running: Any = reactor
    running.listenTCP(int(port), site, backlog=1024, interface="127.0.0.1")
    # As twistd txsessions does once started (txsessions.tap): every server
    # alike, so that the ratios stay fair.
    gc.collect()
    gc.freeze()
    print("ready", flush=True)
    running.run()


if __name__ == "__main__":
    main(*sys.argv[1:])
