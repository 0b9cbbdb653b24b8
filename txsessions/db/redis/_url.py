"""
Redis URLs: where a Redis server is and how to reach it.
"""

from __future__ import annotations

import urllib.parse

import attrs


class _BadURL(ValueError):
    """
    A Redis URL refused with a message of txsessions' own, which quotes none
    of it.
    """


@attrs.frozen
class RedisURL:
    """
    Where a Redis server is and how to reach it, from a URL:
    C{redis://[user:password@]host:port/db}, C{rediss://...} (TLS),
    C{unix:///path/to/socket?db=0}, or
    C{redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]}
    (the master of a Sentinel-watched service); C{?prefix=} sets the key
    prefix.  Over TLS the server's certificate must name the URL's host and
    chain to an authority the system trusts, or to the one in the PEM file
    C{?ssl_ca_certs=/path/ca.pem} names (redis-py's name for it).
    """

    host: str = "127.0.0.1"
    port: int = 6379
    socket: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    caFile: str | None = None
    prefix: str = "txsessions:"
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """
        @param url: a Redis URL.
        @return: what it says.
        @raise ValueError: when it is not a Redis URL.
        """
        try:
            # Inside the try: urllib's errors may quote the user name and
            # password (a character that NFKC normalises to / ? # @ : in the
            # netloc, say).
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qs(parts.query)
            prefix = query.get("prefix", ["txsessions:"])[0]
            if parts.scheme == "unix":
                if not parts.path:
                    raise _BadURL("a unix: Redis URL needs a socket path")
                return cls(
                    socket=parts.path,
                    db=int(query.get("db", ["0"])[0]),
                    password=query.get("password", [None])[0],
                    prefix=prefix,
                )
            if parts.scheme == "redis+sentinel":
                return cls._sentinel(parts, prefix)
            if parts.scheme not in ("redis", "rediss"):
                raise _BadURL("not a redis:, rediss:, unix: or redis+sentinel: URL")
            path = parts.path.strip("/")
            return cls(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 6379,
                db=int(path) if path else 0,
                username=urllib.parse.unquote(parts.username)
                if parts.username
                else None,
                password=urllib.parse.unquote(parts.password)
                if parts.password
                else None,
                tls=parts.scheme == "rediss",
                caFile=query.get("ssl_ca_certs", [None])[0],
                prefix=prefix,
            )
        except _BadURL as e:
            raise ValueError(f"bad Redis URL: {e}") from None
        except ValueError:
            # urllib's message may quote part of the password.
            raise ValueError(
                "bad Redis URL: check the port, and percent-encode any / @ : # "
                "in the user name or password"
            ) from None

    @classmethod
    def _sentinel(cls, parts: urllib.parse.SplitResult, prefix: str) -> RedisURL:
        credentials, _, hosts = parts.netloc.rpartition("@")
        user, _, password = credentials.partition(":")
        sentinels = []
        for host in hosts.split(","):
            name, _, port = host.partition(":")
            sentinels.append((name or "127.0.0.1", int(port or 26379)))
        service, _, db = parts.path.strip("/").partition("/")
        if not service:
            raise _BadURL("a redis+sentinel: URL names the service: /service[/db]")
        return cls(
            host="",
            port=0,
            db=int(db) if db else 0,
            username=urllib.parse.unquote(user) if user else None,
            password=urllib.parse.unquote(password) if password else None,
            prefix=prefix,
            sentinels=tuple(sentinels),
            service=service,
        )

    @property
    def address(self) -> str:
        """
        Where the server is, fit for a message (no credentials):
        C{host:port}, the socket's path, or the Sentinel service.
        """
        if self.socket is not None:
            return self.socket
        if self.service is not None:
            sentinels = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"{self.service} via Sentinel {sentinels}"
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"
