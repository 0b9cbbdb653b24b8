# -*- test-case-name: tests.db.test_redis_tls -*-
"""
TLS to Redis (C{rediss://}) that checks who the server is, as a browser
would: its certificate must chain to a trusted authority and name the host
the URL names in a subjectAltName.

Twisted's own check (C{optionsForClientTLS}) lets through a certificate
with no subjectAltName at all: C{service_identity} raises an error for it
that is not a C{VerificationError}, which Twisted only logs, and the
connection goes on.  The check here, which replaces Twisted's on each
connection, refuses whatever C{service_identity} does not vouch for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._url import RedisURL

_log = Logger()

_END = b"-----END CERTIFICATE-----"


@functools.lru_cache(maxsize=8)
def tlsOptions(where: RedisURL) -> IOpenSSLClientConnectionCreator:
    """
    TLS that checks who the server is: its certificate must name the URL's
    host and chain to the authorities in the URL's C{ssl_ca_certs} file, or
    else to the system's.  Read once per URL.

    @param where: a C{rediss://} URL.
    @raise ValueError: when C{ssl_ca_certs} names no readable file of PEM
        certificates.
    """
    from twisted.internet import ssl

    if where.caFile is None:
        return _NamedHostOnly(ssl.optionsForClientTLS(where.host), where.host)
    try:
        with open(where.caFile, "rb") as f:
            data = f.read()
        authorities = [
            ssl.Certificate.loadPEM(block + _END)
            for block in data.split(_END)
            if b"-----BEGIN CERTIFICATE-----" in block
        ]
        if not authorities:
            raise ValueError("it holds no PEM certificate")
    except Exception as e:
        raise ValueError(f"ssl_ca_certs {where.caFile!r}: {e}") from None
    options = ssl.optionsForClientTLS(
        where.host, trustRoot=ssl.trustRootFromCertificates(authorities)
    )
    return _NamedHostOnly(options, where.host)


@implementer(IOpenSSLClientConnectionCreator)
class _NamedHostOnly:
    """
    Twisted's client TLS options, with each connection's check of the
    server's certificate replaced by L{_verifier}'s.
    """

    def __init__(self, options: IOpenSSLClientConnectionCreator, host: str) -> None:
        self._options = options
        self._host = host

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:
        """
        See L{IOpenSSLClientConnectionCreator.clientConnectionForTLS}.
        """
        from OpenSSL.SSL import VERIFY_FAIL_IF_NO_PEER_CERT, VERIFY_PEER

        connection = self._options.clientConnectionForTLS(tlsProtocol)
        connection.set_verify(
            VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT,
            _verifier(tlsProtocol, self._host),
        )
        return connection


def _verifier(tlsProtocol: Any, host: str) -> Callable[..., bool]:
    """
    @return: an OpenSSL verify callback that accepts the chain OpenSSL
        accepted only when its server certificate names C{host}, and fails
        the connection (C{failVerification}) with why otherwise.
    """
    from service_identity.hazmat import DNS_ID, IPAddress_ID, verify_service_identity
    from service_identity.pyopenssl import extract_patterns

    isAddress = isIPAddress(host) or isIPv6Address(host)
    wanted = IPAddress_ID(host) if isAddress else DNS_ID(host)

    # Dropped once the server's certificate is checked, as Twisted's own
    # callback does: the connection holds this callback, which would
    # otherwise hold the protocol that holds the connection.
    protocol: Any = tlsProtocol

    def verify(
        connection: Any, certificate: Any, error: int, depth: int, ok: int
    ) -> bool:
        nonlocal protocol
        if not ok or depth != 0:
            # OpenSSL checks the chain; only the server's own certificate
            # names a host.
            return bool(ok)
        try:
            verify_service_identity(extract_patterns(certificate), [wanted], [])
        except Exception as e:
            # A VerificationError, a CertificateError (no subjectAltName), or
            # anything else: an exception must not escape into OpenSSL.
            # Said here: the client only sees the connection lost.
            _log.warn(
                "the Redis server's TLS certificate does not name {host}: {why}",
                host=host,
                why=f"{type(e).__name__}: {e}",
            )
            if protocol is not None:
                protocol.failVerification(Failure())
            return False
        finally:
            protocol = None
        return True

    return verify
