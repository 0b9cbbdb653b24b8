from __future__ import annotations

import hashlib

import pytest

from txsessions.ids import generateSessionID, isWellFormedID, redact, storeKey


def test_generatedIDsCarry256BitsOfURLSafeBase64() -> None:
    sessionID = generateSessionID()
    assert len(sessionID) == 43
    assert isWellFormedID(sessionID)


def test_generatedIDsAreUnique() -> None:
    assert len({generateSessionID() for _ in range(100_000)}) == 100_000


def test_generatorDrawsFromTheOperatingSystemsCSPRNG(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # os.urandom, what secrets.token_urlsafe draws from too: 32 bytes.
    calls: list[int] = []

    def spy(n: int) -> bytes:
        calls.append(n)
        return b"\xfb\xff" + bytes(n - 2)

    monkeypatch.setattr("os.urandom", spy)
    assert generateSessionID() == "-_8" + "A" * 40
    assert calls == [32]


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        " ",
        "short",
        "a" * 21,
        "a" * 129,
        "../../etc/passwd",
        "a/b" * 10,
        "a\\b" * 10,
        "x" * 30 + ";",
        "x" * 30 + "\r\n",
        "x" * 30 + "\x00",
        "é" * 30,
        "x" * 30 + "=",
        "x" * 10_000,
    ],
)
def test_malformedIDsAreRefused(candidate: str) -> None:
    assert not isWellFormedID(candidate)


def test_storeKeyIsTheSHA256OfTheID() -> None:
    sessionID = generateSessionID()
    key = storeKey(sessionID)
    assert key == hashlib.sha256(sessionID.encode()).hexdigest()
    assert sessionID not in key


def test_redactKeepsSixCharacters() -> None:
    assert redact("abcdefghijkl") == "abcdef\N{HORIZONTAL ELLIPSIS}"
