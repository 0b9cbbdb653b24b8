"""
Each database behind a real server: many concurrent writers, and (for the
persistent ones) a twistd restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults
from twisted.web.resource import IResource

from tests.apps import kvApp, servedAndWritten
from tests.db.test_conformance import DATABASES, databaseURL
from tests.processes import Server, twistd
from tests.support import COOKIE, cookieValue, plainClient, setCookies
from txsessions import Config, Sessions
from txsessions.db import openDatabase


@pytest.mark.parametrize("kind", DATABASES)
@pytest_twisted.ensureDeferred
async def test_200ConcurrentWritersOfOneSessionAllLand(
    kind: str, tmp_path: Any, listen: Any, request: Any
) -> None:
    sessions = Sessions(
        Config(cookie=COOKIE), openDatabase(databaseURL(kind, tmp_path, request))
    )
    try:
        base, client, cookies = await servedAndWritten(
            sessions, listen, "/set/user/dora"
        )

        async def write(i: int) -> None:
            response = await client.get(f"{base}/setint/k{i}/{i}", cookies=cookies)
            assert response.code == 200
            await response.content()
            assert setCookies(response) == []

        await gatherResults([Deferred.fromCoroutine(write(i)) for i in range(200)])
        response = await client.get(base + "/all", cookies=cookies)
        values = (await response.json())["values"]
        assert values == {"user": "dora", **{f"k{i}": i for i in range(200)}}
    finally:
        await sessions.close()


async def login(base: str, client: Any) -> str:
    response = await client.head(base + "/login")
    await response.content()
    return cookieValue(response, "mycookiesessionnameid")


async def secret(base: str, client: Any, sid: str) -> tuple[int, str]:
    response = await client.get(
        base + "/secret", cookies={"mycookiesessionnameid": sid}
    )
    return response.code, await response.text()


@pytest.mark.parametrize("kind", ["sqlite", "lmdb", "redis"])
@pytest_twisted.ensureDeferred
async def test_aCookieOutlivesATwistdRestart(
    kind: str, tmp_path: Any, request: Any
) -> None:

    client = plainClient()
    argv = [
        twistd(),
        "-n",
        "--pidfile=",
        "txsessions",
        "--database",
        databaseURL(kind, tmp_path, request),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]
    first = Server(argv, str(tmp_path))
    try:
        base = await first.start()
        sid = await login(base, client)
        assert await secret(base, client, sid) == (200, "The cake is a lie!\n")
    finally:
        await first.stop()
    second = Server(argv, str(tmp_path))
    try:
        base = await second.start()
        assert await secret(base, client, sid) == (200, "The cake is a lie!\n")
        assert await secret(base, client, "A" * 43) == (403, "Forbidden\n")
    finally:
        await second.stop()


def kvServer() -> IResource:
    """
    L{kvApp} under its own sessions, for C{twistd txsessions --app}, which
    gives them the C{--database}.
    """
    sessions = Sessions(Config(cookie=COOKIE))
    return sessions.wrap(kvApp(sessions).resource())


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
@pytest_twisted.ensureDeferred
async def test_everyAcknowledgedSaveSurvivesSIGKILL(
    kind: str, tmp_path: Any, request: Any
) -> None:
    """
    A server killed with SIGKILL while clients write: after a restart on
    the same file, every save whose response a client received is there,
    and the database opens cleanly.
    """
    root = str(Path(__file__).resolve().parents[2])
    argv = [
        twistd(),
        "-n",
        "--pidfile=",
        "txsessions",
        "--app",
        "tests.db.test_serving:kvServer",
        "--database",
        databaseURL(kind, tmp_path, request),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]
    client = plainClient()
    first = Server(argv, str(tmp_path), pythonPath=root)
    acknowledged: list[str] = []
    try:
        base = await first.start()
        response = await client.get(base + "/set/user/dora")
        await response.content()
        cookies = {COOKIE: cookieValue(response, COOKIE)}

        async def writer(i: int) -> None:
            for j in range(1000):
                key = f"w{i}x{j}"
                try:
                    response = await client.get(
                        f"{base}/setint/{key}/{j}", cookies=cookies
                    )
                    await response.content()
                except Exception:
                    return  # the server is gone
                assert response.code == 200
                acknowledged.append(key)
                if len(acknowledged) == 150:
                    first._process.signalProcess("KILL")

        await gatherResults([Deferred.fromCoroutine(writer(i)) for i in range(8)])
    finally:
        await first.stop()
    assert len(acknowledged) >= 150
    second = Server(argv, str(tmp_path), pythonPath=root)
    try:
        base = await second.start()
        response = await client.get(base + "/all", cookies=cookies)
        values = (await response.json())["values"]
        assert [key for key in acknowledged if key not in values] == []
        assert values["user"] == "dora"
    finally:
        await second.stop()
