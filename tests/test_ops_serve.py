"""
The examples' L{txsessions.demo.serve} on any endpoint description, and a
one-line error for one it cannot use.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol

from txsessions.demo import listeningOn

ROOT = Path(__file__).resolve().parent.parent
LISTENING = b"Now listening on: "


class _Example(ProcessProtocol):
    """
    An example's output; C{said} fires once it says it listens or exits.
    """

    def __init__(self) -> None:
        self.output = b""
        self.status: int | None = None
        self.said: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if LISTENING in self.output and b"\n" in self.output.split(LISTENING)[-1]:
            self._say()

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.status = reason.value.exitCode
        self._say()
        self.ended.callback(None)

    def _say(self) -> None:
        if not self.said.called:
            self.said.callback(None)


async def runTour(description: str) -> _Example:
    """
    Run C{examples/tour.py DESCRIPTION} until it listens or exits; stop it.

    @return: what it wrote, and its exit status if it exited.
    """
    example = _Example()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, str(ROOT / "examples" / "tour.py"), description]
    process = reactor.spawnProcess(example, argv[0], argv, env=env)
    try:
        await example.said.addTimeout(60, reactor)
    finally:
        try:
            process.signalProcess("TERM")
        except ProcessExitedAlready:
            pass
        await example.ended
    return example


@pytest_twisted.ensureDeferred
async def test_anExampleServesOnAUnixSocket(tmp_path: Path) -> None:
    """
    C{serve} read the port of a UNIX address, which has none: a traceback
    once listening.
    """
    path = tmp_path / "tour.sock"
    example = await runTour(f"unix:{path}")
    assert example.output.decode() == f"Now listening on: unix:{path}\n"


@pytest_twisted.ensureDeferred
async def test_aMistypedDescriptionIsOneLine() -> None:
    """
    A description Twisted cannot parse was a C{ValueError} traceback.
    """
    example = await runTour("8081")
    assert example.status == 1
    assert example.output.decode() == (
        "'8081' is not an endpoint description (such as tcp:8080 or "
        "unix:/tmp/app.sock): Unknown endpoint type: '8081'\n"
    )


@pytest_twisted.ensureDeferred
async def test_aPortOutOfRangeIsOneLine() -> None:
    example = await runTour("tcp:99999:interface=127.0.0.1")
    assert example.status == 1
    assert example.output.decode() == (
        "cannot listen on tcp:99999:interface=127.0.0.1: "
        "bind(): port must be 0-65535.\n"
    )


def test_theLineNamesTheURLOfATCPPort() -> None:
    assert listeningOn(IPv4Address("TCP", "127.0.0.1", 8080), "tcp:8080") == (
        "Now listening on: http://localhost:8080"
    )
    assert listeningOn(UNIXAddress("/run/a.sock"), "unix:/run/a.sock") == (
        "Now listening on: unix:/run/a.sock"
    )
