# -*- test-case-name: tests.test_codec -*-
"""
L{CookieCodec}: signed and encrypted session cookies, for
L{Config.encoding<txsessions.Config>}.

A cookie value is URL-safe base64 of::

    version (1 byte) | key id (4) | issued at (8, big-endian seconds)
    | nonce (12) | AES-256-GCM ciphertext of the session id, with its tag

The version, key id, issue time and cookie name are authenticated data, so
a value made for another cookie, with another key, or at another time fails
verification; nothing is decoded before it passes.  The newest key seals,
every key opens, and a value opened with an older key (or older than half
the maximum age) asks to be re-issued under the newest.  L{readKeys} reads
the keys from a file, as C{--secret-file} gives them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import math
import os
import re
import stat
import struct
import time
from collections.abc import Callable, Sequence

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
"""
The length of every key: AES-256.
"""

MAX_COOKIE_BYTES = 4096
"""
The most a cookie value may weigh, coming in or going out.
"""

VERSION = 1
_HEADER = struct.Struct(">B4sQ12s")
_TAG_BYTES = 16
_FUTURE_SKEW = 60.0
_alphabet = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class CodecError(ValueError):
    """
    A cookie value did not verify: tampered, truncated, foreign, expired,
    from the future, sealed with an unknown key, or too large.  Every
    failure raises this one class with a message that says which, never
    the value.
    """


@attrs.frozen
class Opened:
    """
    A verified cookie value.

    @ivar value: what it carries.
    @ivar current: C{False} when it should be re-issued: sealed with an older
        key, or older than half the maximum age.
    """

    value: str
    current: bool


DEFAULT_MAX_AGE = 30 * 24 * 3600.0
"""
How long, in seconds, a sealed value stays valid unless told otherwise:
30 days.
"""


def looksSealed(value: str) -> bool:
    """
    @return: whether C{value} has the form of a value L{CookieCodec} seals
        (which only a codec with its key can tell for sure).
    """
    try:
        data = _sealedBytes(value)
    except CodecError:
        return False
    return len(data) > _HEADER.size + _TAG_BYTES and data[0] == VERSION


def _sealedBytes(value: str) -> bytes:
    """
    @return: the bytes a sealed value's URL-safe base64 (unpadded) holds.
    @raise CodecError: when it is no such text, or too short to be sealed.
    """
    if _alphabet.fullmatch(value) is None:
        raise CodecError("cookie is not URL-safe base64")
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise CodecError("cookie is not base64") from None
    if len(data) < _HEADER.size + _TAG_BYTES:
        raise CodecError("cookie too short")
    return data


def _keyID(key: bytes) -> bytes:
    return hashlib.sha256(b"txsessions key id\x00" + key).digest()[:4]


def isWeakKey(key: bytes) -> bool:
    """
    Whether C{key} cannot have come from a random source: it is text
    (UTF-8, a password or hex digits in any language), has fewer than 16
    distinct bytes, repeats a pattern of 16 bytes or fewer, or counts up
    or down in equal steps.  Thirty-two random bytes are text with a chance
    of one in 10 ** 8 and fail the other tests with far less;
    L{generateKey} never makes such a key.

    @param key: a key.
    """
    if len(set(key)) < 16:
        return True
    if any(key[period:] == key[:-period] for period in range(1, 17)):
        return True
    if len({(b - a) % 256 for a, b in zip(key, key[1:], strict=False)}) == 1:
        return True
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def generateKey() -> bytes:
    """
    @return: a new random key, for L{CookieCodec}.
    """
    key = os.urandom(KEY_BYTES)
    while isWeakKey(key):  # one time in 10 ** 8
        key = os.urandom(KEY_BYTES)
    return key


class CookieCodec:
    """
    Seals session ids into cookie values and opens them again.
    """

    def __init__(
        self,
        keys: Sequence[bytes],
        maxAge: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """
        @param keys: 32-byte keys, oldest first: the last seals, all open.
            Remove a key from the list to retire it.
        @param maxAge: how long, in seconds, a sealed value stays valid;
            give sessions a lifetime no longer than this.
        @param clock: the current time, in seconds since the epoch.
        @raise ValueError: when there is no key, or a key is not 32 bytes
            that look random (text, hex digits or a pattern are refused).
        """
        if isinstance(keys, (bytes, str)) or not keys:
            raise ValueError("CookieCodec needs a list of one or more keys")
        for key in keys:
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValueError(
                    f"every key must be {KEY_BYTES} random bytes "
                    "(txsessions.codec.generateKey makes one)"
                )
            if isWeakKey(key):
                raise ValueError(
                    f"a key must be {KEY_BYTES} random bytes, not text or a "
                    "pattern (a password, hex digits, zeros), which an attacker "
                    "could guess: txsessions.codec.generateKey makes one"
                )
        if not (math.isfinite(maxAge) and maxAge > 0):
            raise ValueError("maxAge must be a positive number of seconds")
        self._keys = {_keyID(key): AESGCM(key) for key in keys}
        if len(self._keys) != len(keys):
            raise ValueError("the keys must differ")
        self._newestID = _keyID(keys[-1])
        self._newest = self._keys[self._newestID]
        self._maxAge = maxAge
        self._clock = clock

    @property
    def maxAge(self) -> float:
        """
        How long, in seconds, a sealed value stays valid.
        """
        return self._maxAge

    def onClock(self, clock: Callable[[], float]) -> CookieCodec:
        """
        @param clock: the current time, in seconds since the epoch: a
            testing clock's C{seconds}, say.
        @return: a codec with the same keys and C{maxAge}, telling the time
            by C{clock}.
        """
        codec = copy.copy(self)
        codec._clock = clock
        return codec

    def encode(self, cookieName: str, value: str) -> str:
        """
        Seal C{value} with the newest key.

        @return: the cookie value.
        @raise CodecError: when the result would exceed 4096 bytes.
        """
        issued = int(self._clock())
        nonce = os.urandom(12)
        header = _HEADER.pack(VERSION, self._newestID, issued, nonce)
        sealed = self._newest.encrypt(
            nonce, value.encode(), self._aad(cookieName, header)
        )
        token = base64.urlsafe_b64encode(header + sealed).rstrip(b"=").decode("ascii")
        if len(token) + len(cookieName) + 1 > MAX_COOKIE_BYTES:
            raise CodecError("the sealed cookie would exceed 4096 bytes")
        return token

    def decode(self, cookieName: str, value: str) -> str:
        """
        Open a cookie value (Iris's C{Decode}).

        @return: what it carries.
        @raise CodecError: when it does not verify.
        """
        return self.open(cookieName, value).value

    def open(self, cookieName: str, value: str) -> Opened:
        """
        Verify and open a cookie value.

        @return: what it carries, and whether it should be re-issued.
        @raise CodecError: when it does not verify.
        """
        if len(value) + len(cookieName) + 1 > MAX_COOKIE_BYTES:
            raise CodecError("cookie too large")
        data = _sealedBytes(value)
        header = data[: _HEADER.size]
        version, keyID, issued, nonce = _HEADER.unpack(header)
        if version != VERSION:
            raise CodecError("unknown cookie version")
        cipher = self._keys.get(keyID)
        if cipher is None:
            raise CodecError("cookie sealed with an unknown key")
        try:
            plain = cipher.decrypt(
                nonce, data[_HEADER.size :], self._aad(cookieName, header)
            )
        except InvalidTag:
            raise CodecError("cookie failed verification") from None
        age = self._clock() - issued
        if age > self._maxAge:
            raise CodecError("cookie expired")
        if age < -_FUTURE_SKEW:
            raise CodecError("cookie issued in the future")
        try:
            opened = plain.decode("ascii")
        except UnicodeDecodeError:
            raise CodecError("cookie carries no id") from None
        current = keyID == self._newestID and age < self._maxAge / 2
        return Opened(opened, current)

    @staticmethod
    def _aad(cookieName: str, header: bytes) -> bytes:
        return b"txsessions cookie\x00" + cookieName.encode() + b"\x00" + header


def readKeys(path: str) -> list[bytes]:
    """
    Read the keys of a C{--secret-file}: one a line, newest first, each 32
    bytes in base64 (standard or URL-safe) or hexadecimal; blank lines and
    lines starting with C{#} are skipped.  Error messages name the file and
    the line, never a key.

    @param path: the file.
    @return: the keys, oldest first, as L{txsessions.codec.CookieCodec}
        takes them.
    @raise ValueError: when the file cannot be read, may be read by other
        users or changed by its group, holds no key, holds a key twice, or
        holds a line that is not a strong key.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            lines = f.read().splitlines()
    except OSError as e:
        raise ValueError(f"cannot read --secret-file {path}: {e.strerror}") from None
    if os.name == "posix" and mode & 0o027:
        raise ValueError(
            f"--secret-file {path} may be read or changed by other users "
            f"(mode {stat.S_IMODE(mode):o}): chmod 600 {path}"
        )
    keys = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith(b"#"):
            continue
        key = _decodeKey(text)
        where = f"line {number} of --secret-file {path}"
        if key is None or len(key) != KEY_BYTES:
            raise ValueError(
                f"{where} is not a key: use {KEY_BYTES} random bytes in base64 "
                "(twistd txsessions --generate-secret prints one)"
            )
        if isWeakKey(key):
            raise ValueError(
                f"{where} is a weak key (text or a pattern): make a random one "
                "(twistd txsessions --generate-secret prints one)"
            )
        keys.append(key)
    if not keys:
        raise ValueError(f"--secret-file {path} holds no key")
    if len(set(keys)) != len(keys):
        raise ValueError(f"--secret-file {path} holds a key twice")
    keys.reverse()
    return keys


def _decodeKey(text: bytes) -> bytes | None:
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except ValueError:
            pass
    try:
        return base64.b64decode(
            text.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(text) % 4),
            validate=True,
        )
    except (binascii.Error, ValueError):
        return None
