"""
Running a server in a child process for a test, as a user would start it.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol

READY = re.compile(rb"(?:Site starting on |Now listening on: http://localhost:)(\d+)")


class _Server(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ready: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        match = READY.search(self.output)
        if match and not self.ready.called:
            self.ready.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(
                RuntimeError(f"the server exited:\n{self.output.decode()}")
            )
        self.ended.callback(None)


class Server:
    """
    A server process listening on a port it picked itself.
    """

    def __init__(
        self, argv: list[str], cwd: str, pythonPath: str | None = None
    ) -> None:
        self._protocol = _Server()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONUNBUFFERED"] = "1"
        if pythonPath is not None:
            env["PYTHONPATH"] = pythonPath
        self._process = reactor.spawnProcess(
            self._protocol, argv[0], argv, env=env, path=cwd
        )
        self.port = 0

    async def start(self) -> str:
        """
        @return: the server's base URL, once it listens.
        """
        self.port = await self._protocol.ready.addTimeout(60, reactor)
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self._protocol.output.decode(errors="replace")

    async def stop(self) -> None:
        try:
            self._process.signalProcess("TERM")
        except ProcessExitedAlready:
            pass
        await self._protocol.ended


def twistd() -> str:
    """
    The twistd script beside this Python.
    """
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    return script if os.path.exists(script) else "twistd"
