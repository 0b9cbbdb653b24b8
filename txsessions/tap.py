# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd txsessions} plugin: serve the demo, or your own Klein app or
resource, with sessions configured on the command line
(C{twistd txsessions --help} lists the options).
"""

from __future__ import annotations

import base64
import gc
import os
import re
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

import attrs
from twisted.application import service, strports
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.python import usage
from twisted.web.resource import IResource
from twisted.web.server import Site

from .codec import DEFAULT_MAX_AGE, CookieCodec, generateKey
from .codec import readKeys as readKeys  # where admin.py and tests take it
from .config import Config, SameSite, toSeconds
from .db import checkDatabaseURL, openDatabase, requireExtra
from .errors import DatabaseError
from .interfaces import IDatabase
from .manager import Sessions
from .metrics import MetricsResource
from .web import SessionResource


class Options(usage.Options):
    """
    The command line of C{twistd txsessions}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve a Klein app or a resource with txsessions, or, without --app, "
        "the demo of the Iris sessions document (/login, /secret, /logout)."
    )
    optParameters = [
        [
            "app",
            "a",
            None,
            "The app to serve, as module:attribute: a Klein app, a "
            "resource, or a callable returning either.  It is wrapped in sessions "
            "(read them with txsessions.get): those of its Sessions.wrap resource, "
            "or else of the one Sessions its module holds (as for "
            "@sessions.withSession routes), which keep their own database "
            "unless --database is given and ignore the session options "
            "below; or else new ones.",
        ],
        [
            "database",
            "d",
            None,
            "The session database URL (default: memory:, or the --app's own).",
        ],
        [
            "metrics",
            None,
            None,
            "Serve the sessions' metrics as JSON (live sessions, created, "
            "destroyed by reason, store errors and latency) on this endpoint, "
            "for instance tcp:9100.  Off unless given; a TCP endpoint without "
            "interface= binds 127.0.0.1 only (name one to reach it from "
            "elsewhere, and keep it private).",
        ],
        [
            "prometheus",
            None,
            None,
            "Serve the same metrics in Prometheus's text format on this "
            "endpoint, for instance tcp:9101 (needs the prometheus extra).  Off "
            "unless given; binds 127.0.0.1 only unless it names an interface=.",
        ],
        [
            "max-sessions",
            None,
            None,
            "The most live sessions the database holds; new ones are refused "
            "with a 503 beyond (0: no limit; not for Redis).  By default "
            "100000 for memory:, no limit for the others.",
        ],
        [
            "database-timeout",
            None,
            None,
            "Seconds a database call may take before the request gets a 503 "
            "(default: 3; 0: no deadline).",
        ],
        [
            "cookie",
            "c",
            None,
            "The session cookie name (default: txsessionid, "
            "and mycookiesessionnameid for the demo).",
        ],
        ["cookie-path", None, None, "The cookie's Path (default: /)."],
        [
            "cookie-domain",
            None,
            None,
            "The cookie's Domain, to share it with subdomains (default: none, "
            "a host-only cookie).",
        ],
        [
            "same-site",
            None,
            None,
            "The cookie's SameSite: Lax (the default), Strict, None (which "
            "makes it Secure), or omit (no attribute).",
        ],
        [
            "secret-file",
            None,
            None,
            "Sign and encrypt the cookie with the keys in this file: one per "
            "line, newest first, each 32 random bytes in base64 (make one with "
            "--generate-secret).  The file must not be readable by other users.",
        ],
        ["expires", "e", "0", "Session lifetime in seconds (0: none)."],
        [
            "idle-timeout",
            None,
            "0",
            "End sessions idle this many seconds (0: never; not with --expires).",
        ],
        [
            "absolute-timeout",
            None,
            "0",
            "End every session this many seconds after it began, whatever "
            "extends it (0: never).",
        ],
    ]

    optFlags = [
        [
            "no-csrf",
            None,
            "Do not check unsafe requests (POST, PUT, PATCH, DELETE) for a "
            "CSRF token (see docs/csrf.md); checked by default.",
        ],
        # issue 16 (refactor helper): lifecycle log events are opt-in.
        [
            "log-session-events",
            None,
            "Log each session created, regenerated, destroyed and expired "
            "(security events are always logged; metrics count them all).",
        ],
        [
            "force-secure-cookie",
            None,
            "Always mark the cookie Secure, and send it only over TLS (or "
            "through a proxy that says so, with --trust-proxy-headers).",
        ],
        [
            "trust-proxy-headers",
            None,
            "Believe X-Forwarded-Proto: https from a TLS-terminating proxy that "
            "sets it (and strips it from what clients send).",
        ],
        [
            "no-http-only",
            None,
            "Let scripts in the page read the cookie (drops HttpOnly).",
        ],
        [
            "allow-reclaim",
            None,
            "After a destroy, let a later start in the same request begin a "
            "new session, whose cookie replaces the deletion cookie (Iris's "
            "AllowReclaim; off by default; the demo always has it).",
        ],
    ]

    database: IDatabase | None
    """
    The database C{--database} names, opened by L{postOptions}; C{None}
    for one with threads (SQLite, LMDB), checked there and opened when the
    service starts, after twistd has forked (L{makeDatabase}).
    """
    app: IResource | None
    "The resource C{--app} names, loaded by L{postOptions}."
    appSessions: Sessions | None
    """
    The manager the C{--app} comes with (L{appSessions}), found by
    L{postOptions}; C{None} when it comes with none.
    """
    ownDatabase: bool
    """
    Whether L{appSessions} keeps the database it has (no C{--database}
    given): then L{database} is C{None} and nothing is opened.
    """
    config: Config
    "The configuration the options make, built by L{postOptions}."

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Listen on this endpoint description (repeatable; default tcp:8080,
        and for the demo tcp:8080 on 127.0.0.1 only).
        """
        self["listen"].append(description)

    def opt_generate_secret(self) -> None:
        """
        Print a new key for --secret-file, and exit.
        """
        print(base64.b64encode(generateKey()).decode("ascii"))
        sys.exit(0)

    def postOptions(self) -> None:
        """
        Check the options before the service is made.
        """
        if not self["listen"]:
            demo = self["app"] is None
            self["listen"] = [loopbackUnlessTold("tcp:8080") if demo else "tcp:8080"]
        endpoints = [("--listen", description) for description in self["listen"]]
        for option in ("metrics", "prometheus"):
            if self[option] is not None:
                self[option] = loopbackUnlessTold(self[option])
                endpoints.append((f"--{option}", self[option]))
        if self["prometheus"] is not None:
            try:
                requireExtra("prometheus")
            except ValueError as e:
                raise usage.UsageError(f"--prometheus: {e}") from None
        for option, description in endpoints:
            _checkEndpoint(option, description)
        if self["app"] is not None and ":" not in self["app"]:
            raise usage.UsageError("--app takes module:attribute")
        # Loaded now, so that an app that cannot be loaded is a one-line
        # usage error rather than a traceback.
        spec = self["app"]
        self.app = self.appSessions = None
        if spec is not None:
            self.app = loadApp(spec)
            self.appSessions = appSessions(spec, self.app)
        # An app's own manager keeps its own database unless told otherwise.
        self.ownDatabase = self["database"] is None and self.appSessions is not None
        if self["database"] is None:
            self["database"] = "memory:"
        try:
            arguments = self._configArguments()
            try:
                self.config = Config(**arguments)
            except (ValueError, TypeError) as e:
                raise ValueError(_optionNames(str(e))) from None
            if self.ownDatabase:
                self.database = None
                return
            scheme = checkDatabaseURL(self["database"])
            if scheme in ("sqlite", "lmdb"):
                # twistd may change directory (--rundir) before the service
                # opens it again.
                path = self["database"].partition(":")[2]
                self["database"] = f"{scheme}:{os.path.abspath(path)}"
            # Opened now, so that an unusable file is a clear message at
            # start-up rather than a traceback.
            opened = self.makeDatabase()
        except (ValueError, TypeError, DatabaseError) as e:
            raise usage.UsageError(str(e)) from None
        self.database = opened
        closeNow = getattr(opened, "closeNow", None)
        if closeNow is not None:
            # A database with threads (SQLite, LMDB) is opened again when
            # the service starts: twistd forks after this to daemonize, and
            # threads do not survive a fork.
            closeNow()
            self.database = None

    def makeDatabase(self) -> IDatabase:
        """
        @return: the database C{--database} names, with C{--max-sessions}
            and the configuration's C{databaseTimeout}.
        @raise ValueError: when it cannot be opened.
        @raise DatabaseError: likewise.
        """
        return openDatabase(
            self["database"],
            maxSessions=self._maxSessions(),
            deadline=self.config.databaseTimeout,
        )

    def _configArguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "cookie": self["cookie"] or "txsessionid",
            "expires": _seconds(self["expires"], "--expires"),
            "idleTimeout": _seconds(self["idle-timeout"], "--idle-timeout"),
            "absoluteTimeout": _seconds(self["absolute-timeout"], "--absolute-timeout"),
            "allowReclaim": bool(self["allow-reclaim"]),
            "forceSecureCookie": bool(self["force-secure-cookie"]),
            "trustProxyHeaders": bool(self["trust-proxy-headers"]),
            "cookieHTTPOnly": not self["no-http-only"],
            "logSessionEvents": bool(self["log-session-events"]),  # issue 16
            "csrf": not self["no-csrf"],
        }
        if self["database-timeout"] is not None:
            arguments["databaseTimeout"] = _seconds(
                self["database-timeout"], "--database-timeout"
            )
        if self["cookie-path"] is not None:
            arguments["cookiePath"] = self["cookie-path"]
        if self["cookie-domain"] is not None:
            arguments["cookieDomain"] = self["cookie-domain"]
        if self["same-site"] is not None:
            arguments["cookieSameSite"] = _sameSite(self["same-site"])
        if self["secret-file"] is not None:
            lifetime = max(
                arguments["expires"],
                arguments["idleTimeout"],
                arguments["absoluteTimeout"],
            )
            arguments["encoding"] = CookieCodec(
                readKeys(self["secret-file"]), maxAge=max(DEFAULT_MAX_AGE, lifetime)
            )
        return arguments

    def _maxSessions(self) -> int | None:
        value = self["max-sessions"]
        if value is None:
            return None
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            raise ValueError(
                f"--max-sessions takes a whole number of sessions (0: no limit), "
                f"not {value!r}"
            )
        return count


_SAME_SITE: dict[str, SameSite | None] = {
    "lax": "lax",
    "strict": "strict",
    "none": "none",
    "omit": None,
}


def _sameSite(value: str) -> SameSite | None:
    try:
        return _SAME_SITE[value.lower()]
    except KeyError:
        raise ValueError(
            f"--same-site takes Lax, Strict, None or omit, not {value!r}"
        ) from None


def _seconds(value: str, option: str) -> float:
    try:
        return toSeconds(float(value))
    except ValueError:
        raise ValueError(
            f"{option} takes a number of seconds, at least 0, not {value!r}"
        ) from None


_OPTION_NAMES = {
    "expires": "--expires",
    "cookiePath": "--cookie-path",
    "cookieDomain": "--cookie-domain",
    "idleTimeout": "--idle-timeout",
    "absoluteTimeout": "--absolute-timeout",
}


def _optionNames(message: str) -> str:
    """
    Name the options, not the L{Config} fields, in a message about them.
    """
    return re.sub(
        r"\b(" + "|".join(_OPTION_NAMES) + r")\b",
        lambda match: _OPTION_NAMES[match.group(1)],
        message,
    )


def loopbackUnlessTold(description: str) -> str:
    """
    A TCP endpoint description that names no interface, made to bind the
    loopback interface only.

    @param description: an endpoint description (C{tcp:9100}, C{9100},
        C{tcp:9100:interface=0.0.0.0}, C{unix:/run/m.sock}, ...).
    @return: C{description}, with C{:interface=127.0.0.1} (C{::1} for
        C{tcp6}) added to a TCP or SSL endpoint without an interface.
    """
    if description.isdigit():
        description = f"tcp:{description}"
    kind = description.partition(":")[0].lower()
    if kind not in ("tcp", "tcp6", "ssl") or "interface=" in description:
        return description
    loopback = r"\:\:1" if kind == "tcp6" else "127.0.0.1"
    return f"{description}:interface={loopback}"


def _checkEndpoint(option: str, description: str) -> None:
    """
    Refuse an endpoint description Twisted cannot parse, before anything
    starts.

    @raise usage.UsageError: when it is not one.
    """
    from twisted.internet import reactor

    try:
        serverFromString(reactor, description)
    except (ValueError, TypeError) as e:
        raise usage.UsageError(f"{option} {description}: {e}") from None


def loadApp(spec: str) -> IResource:
    """
    Import the app named by C{module:attribute}.

    @param spec: C{module:attribute}.
    @return: the resource to serve: the attribute itself if it is a
        resource, its C{resource()} if it is a Klein app, or what calling it
        returns.
    @raise usage.UsageError: when it names none of these.
    """
    moduleName, _, attribute = spec.partition(":")
    try:
        target: Any = import_module(moduleName)
        for name in attribute.split("."):
            target = getattr(target, name)
        for _ in range(2):
            if IResource.providedBy(target):
                return target
            if callable(getattr(target, "resource", None)):
                target = target.resource()
            elif callable(target):
                target = target()
    except Exception as e:
        # Whatever importing or making the app raised: one line, no
        # traceback (a SyntaxError, a factory wanting arguments).
        raise usage.UsageError(
            f"cannot load --app {spec}: {type(e).__name__}: {e}"
        ) from None
    if IResource.providedBy(target):
        return target
    raise usage.UsageError(f"--app {spec} is neither a Klein app nor a resource")


def appSessions(spec: str, app: IResource) -> Sessions | None:
    """
    The manager an app comes with: a L{SessionResource}'s own, or else the
    one L{Sessions} its module holds, whose C{withSession} routes refuse a
    request that has a session of another manager.

    @param spec: C{module:attribute}, as L{loadApp} loaded C{app}.
    @param app: the app L{loadApp} returned.
    @return: the manager, or C{None} when the module holds none.
    @raise usage.UsageError: when the module holds several.
    """
    if isinstance(app, SessionResource):
        own: Sessions = app.sessions
        return own
    module = sys.modules[spec.partition(":")[0]]
    found: dict[int, tuple[str, Sessions]] = {}
    for name, value in vars(module).items():
        if isinstance(value, Sessions):
            found.setdefault(id(value), (name, value))
    if len(found) > 1:
        names = ", ".join(sorted(name for name, _ in found.values()))
        raise usage.UsageError(
            f"--app {spec}: its module holds several Sessions managers ({names}); "
            "give --app the Sessions.wrap resource of the one to use"
        )
    for _, sessions in found.values():
        return sessions
    return None


class _SessionsService(service.Service):
    """
    Closes the sessions' database when the server stops; when it starts,
    opens it if it was left to be opened then, and moves what start-up made
    out of the garbage collector's sight.
    """

    def __init__(
        self, sessions: Sessions, opening: Callable[[], IDatabase] | None = None
    ) -> None:
        self.sessions = sessions
        self._opening = opening

    def privilegedStartService(self) -> None:
        """
        Open the database left to be opened now: after twistd has forked
        (threads do not survive a fork), before it gives up privileges, as
        when L{Options.postOptions} checked it.  A failure (it opened a
        moment ago) is twistd's to report, and stops it.
        """
        super().privilegedStartService()
        self._open()

    def _open(self) -> None:
        if self._opening is not None:
            self.sessions.useDatabase(self._opening())
            self._opening = None

    def startService(self) -> None:
        """
        Open the database, if L{privilegedStartService} was not called to
        (Twisted's C{twist} runner calls C{startService} alone).  Then freeze
        the heap start-up made (C{gc.freeze}, for the whole process):
        the modules, classes and functions loaded, some 60,000 objects, that
        each full collection would otherwise walk again.  Under C{wrk} on
        Redis a full collection came every 2,000-3,000 requests and took
        26-32 ms, the reactor blocked meanwhile (about 16 us a request);
        frozen, 1.5-2 ms.
        """
        super().startService()
        self._open()
        gc.collect()
        gc.freeze()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.sessions.close()


def makeService(options: Options) -> service.IService:
    """
    Build the service C{twistd txsessions} runs.

    @param options: the parsed command line.
    @return: a service listening on every C{--listen} endpoint.
    """
    database = options.database  # None: opened when the service starts
    config = options.config
    if options.app is None:
        from .demo import COOKIE, demoApp, demoConfig

        demo = demoConfig(options["cookie"] or COOKIE)
        config = attrs.evolve(
            config, cookie=demo.cookie, allowReclaim=demo.allowReclaim
        )
        sessions = Sessions(config, database)
        root: IResource = demoApp(sessions).resource()
    else:
        root = options.app
        if options.appSessions is None:
            sessions = Sessions(config, database)
        else:
            sessions = options.appSessions
            if database is not None:
                sessions.useDatabase(database)
        if not isinstance(root, SessionResource):
            root = sessions.wrap(root)
    parent = service.MultiService()
    opened = database is not None or options.ownDatabase
    opening = None if opened else options.makeDatabase
    _SessionsService(sessions, opening).setServiceParent(parent)
    site = Site(root)
    for description in options["listen"]:
        strports.service(description, site).setServiceParent(parent)
    for option, resourceFor in [
        ("metrics", MetricsResource),
        ("prometheus", _prometheusResource),
    ]:
        if options[option] is not None:
            served = strports.service(options[option], Site(resourceFor(sessions)))
            served.setName(option)
            served.setServiceParent(parent)
    return parent


def _prometheusResource(sessions: Sessions) -> IResource:
    # Imported only when --prometheus asks: it needs the prometheus extra.
    from .prometheus import PrometheusResource

    return PrometheusResource(sessions)
