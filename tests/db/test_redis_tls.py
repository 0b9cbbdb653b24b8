"""
C{rediss://}: TLS to Redis checks the server, as a browser would: its
certificate must chain to a trusted authority (the URL's C{ssl_ca_certs},
else the system's) and name the host the URL names.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher

from tests.redis import freePort, serverProgram, waitFor
from txsessions.db.redis import RedisDatabase
from txsessions.errors import DatabaseError


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    issuer: str,
    key: Any,
    signer: Any,
    ca: bool,
    names: list[x509.GeneralName],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, certificate: x509.Certificate, key: Any = None) -> None:
    path.with_suffix(".crt").write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
    )
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )


@pytest.fixture(scope="module")
def authority(tmp_path_factory: Any) -> Path:
    """
    A certificate authority of the tests' own, and three server
    certificates it signed: one naming 127.0.0.1, one naming another host,
    one naming no host (no subjectAltName).
    """
    directory: Path = tmp_path_factory.mktemp("tls")
    caKey = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(
        "txsessions test CA", "txsessions test CA", caKey, caKey, True, []
    )
    _write(directory / "ca", ca)
    servers: list[tuple[str, str, list[x509.GeneralName]]] = [
        ("loopback", "loopback", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ("elsewhere", "elsewhere", [x509.DNSName("not-this-host.example")]),
        # The host in its subject's common name, as certificates had it
        # before subjectAltName: no longer a name to trust (RFC 6125).
        ("unnamed", "127.0.0.1", []),
    ]
    for name, subject, names in servers:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(
            subject, "txsessions test CA", key, caKey, False, names
        )
        _write(directory / name, certificate, key)
    return directory


def _tlsServer(authority: Path, certificate: str) -> Iterator[int]:
    """
    A Redis server speaking only TLS on a free loopback port, with the
    named certificate; skipped where the server was built without TLS.
    """
    port = freePort()
    process = subprocess.Popen(
        [
            serverProgram(),
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(authority),
            "--tls-cert-file",
            str(authority / f"{certificate}.crt"),
            "--tls-key-file",
            str(authority / f"{certificate}.key"),
            "--tls-ca-cert-file",
            str(authority / "ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        waitFor(process, "Ready to accept connections")
    except RuntimeError:
        process.wait()
        pytest.skip("this Redis server was built without TLS")
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def loopback(authority: Path) -> Iterator[int]:
    """A TLS Redis server whose certificate names 127.0.0.1."""
    yield from _tlsServer(authority, "loopback")


@pytest.fixture(scope="module")
def elsewhere(authority: Path) -> Iterator[int]:
    """A TLS Redis server whose certificate names another host."""
    yield from _tlsServer(authority, "elsewhere")


async def _refused(url: str) -> list[str]:
    """
    Fail to reach the Redis C{url} names (a L{DatabaseError}).

    @return: what was logged meanwhile.
    """
    events: list[Any] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    try:
        with pytest.raises(DatabaseError):
            await _count(url)
    finally:
        globalLogPublisher.removeObserver(observer)
    return [formatEvent(event) for event in events]


async def _count(url: str) -> int:
    database = RedisDatabase(url, connectTimeout=2.0)
    try:
        return await database.count()
    finally:
        await database.close()


@pytest_twisted.ensureDeferred
async def test_aServerTheURLsAuthorityVouchesForIsReached(
    authority: Path, loopback: int
) -> None:
    """
    With C{ssl_ca_certs} naming the authority that signed the server's
    certificate, and the certificate naming the URL's host, Redis answers.
    """
    ca = authority / "ca.crt"
    assert await _count(f"rediss://127.0.0.1:{loopback}/0?ssl_ca_certs={ca}") == 0


@pytest_twisted.ensureDeferred
async def test_aServerNoTrustedAuthorityVouchesForIsRefused(loopback: int) -> None:
    """
    Without C{ssl_ca_certs}, the system's authorities are trusted, and none
    of them signed the test server's certificate: no connection is made.
    """
    with pytest.raises(DatabaseError):
        await _count(f"rediss://127.0.0.1:{loopback}/0")


@pytest_twisted.ensureDeferred
async def test_aCertificateForAnotherHostIsRefused(
    authority: Path, elsewhere: int
) -> None:
    """
    A certificate signed by the trusted authority but naming another host
    is refused, saying why: TLS checks who the server is, not only who
    signed.
    """
    ca = authority / "ca.crt"
    logged = await _refused(f"rediss://127.0.0.1:{elsewhere}/0?ssl_ca_certs={ca}")
    assert any("certificate does not name 127.0.0.1" in line for line in logged)


@pytest.fixture(scope="module")
def unnamed(authority: Path) -> Iterator[int]:
    """A TLS Redis server whose certificate has no subjectAltName."""
    yield from _tlsServer(authority, "unnamed")


@pytest_twisted.ensureDeferred
async def test_aCertificateNamingNoHostIsRefused(authority: Path, unnamed: int) -> None:
    """
    A certificate signed by the trusted authority but with no
    subjectAltName names no host, whatever its common name says, and is
    refused, saying why.  (Before the fix, Twisted's check raised an error
    it only logged, and the connection went on: Redis answered.)
    """
    ca = authority / "ca.crt"
    logged = await _refused(f"rediss://127.0.0.1:{unnamed}/0?ssl_ca_certs={ca}")
    assert any("certificate does not name 127.0.0.1" in line for line in logged)


def test_aMissingAuthorityFileIsAClearErrorAtOnce(tmp_path: Path) -> None:
    """
    An C{ssl_ca_certs} that names no readable file is refused when the
    database is made, saying which file.
    """
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ValueError, match="nowhere.pem"):
        RedisDatabase(f"rediss://127.0.0.1:1/0?ssl_ca_certs={missing}")


class _Protocol:
    """A TLS protocol, as far as the verify callback sees one."""

    def failVerification(self, reason: Any) -> None:
        raise AssertionError("a good certificate failed")


def test_theCheckLetsGoOfItsConnectionOnceDone(authority: Path) -> None:
    """
    Once it has checked the server's certificate, the verify callback holds
    no reference to the TLS protocol (which holds the connection that holds
    the callback): the connection is freed without the cycle collector, as
    with Twisted's own callback.  (Before, the callback held it for good.)
    """
    from OpenSSL.crypto import X509

    from txsessions.db.redis._tls import _verifier

    pem = (authority / "loopback.crt").read_bytes()
    certificate = X509.from_cryptography(x509.load_pem_x509_certificate(pem))
    protocol = _Protocol()
    alive = weakref.ref(protocol)
    verify = _verifier(protocol, "127.0.0.1")
    assert verify(None, certificate, 0, 0, 1)
    del protocol
    assert alive() is None
    assert verify is not None
