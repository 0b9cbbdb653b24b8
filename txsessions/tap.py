# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd txsessions} plugin: serve the demo, or your own Klein app or
resource, with sessions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import attrs
from twisted.application import service, strports
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import IResource
from twisted.web.server import Site

from .config import Config
from .db import checkDatabaseURL, openDatabase
from .errors import DatabaseError
from .ids import redact
from .interfaces import IDatabase
from .manager import Sessions
from .records import DestroyReason
from .web import SessionResource

_log = Logger()


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
            "(read them with txsessions.get) unless it is a Sessions.wrap resource "
            "already, whose manager then uses --database.",
        ],
        ["database", "d", "memory:", "The session database URL."],
        [
            "cookie",
            "c",
            None,
            "The session cookie name (default: txsessionid, "
            "and mycookiesessionnameid for the demo).",
        ],
        ["expires", "e", "0", "Session lifetime in seconds (0: none)."],
        [
            "idle-timeout",
            None,
            "0",
            "End sessions idle this many seconds (0: never; not with --expires).",
        ],
    ]

    database: IDatabase
    "The database C{--database} names, opened by L{postOptions}."
    config: Config
    "The configuration the options make, built by L{postOptions}."

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Listen on this endpoint description (repeatable; default tcp:8080).
        """
        self["listen"].append(description)

    def postOptions(self) -> None:
        """
        Check the options before the service is made.
        """
        if not self["listen"]:
            self["listen"] = ["tcp:8080"]
        if self["app"] is not None and ":" not in self["app"]:
            raise usage.UsageError("--app takes module:attribute")
        try:
            self.config = Config(
                cookie=self["cookie"] or "txsessionid",
                expires=_seconds(self["expires"], "--expires"),
                idleTimeout=_seconds(self["idle-timeout"], "--idle-timeout"),
            )
            checkDatabaseURL(self["database"])
            # Opened now, so that an unusable file is a clear message at
            # start-up rather than a traceback.
            self.database = openDatabase(self["database"])
        except (ValueError, DatabaseError) as e:
            raise usage.UsageError(str(e)) from None


def _seconds(value: str, option: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{option} takes a number of seconds, not {value!r}") from None


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
    except (ImportError, AttributeError) as e:
        raise usage.UsageError(f"cannot load --app {spec}: {e}") from None
    for _ in range(2):
        if IResource.providedBy(target):
            return target
        if callable(getattr(target, "resource", None)):
            target = target.resource()
        elif callable(target):
            target = target()
    if IResource.providedBy(target):
        return target
    raise usage.UsageError(f"--app {spec} is neither a Klein app nor a resource")


def _logDestroyed(key: str, reason: DestroyReason) -> None:
    _log.info(
        "session {key} destroyed ({reason})",
        key=redact(key),
        reason=reason.value,
        event="destroyed",
    )


class _SessionsService(service.Service):
    """
    Closes the sessions' database when the server stops.
    """

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.sessions.close()


def makeService(options: Options) -> service.IService:
    """
    Build the service C{twistd txsessions} runs.

    @param options: the parsed command line.
    @return: a service listening on every C{--listen} endpoint.
    """
    database = options.database
    config = options.config
    if options["app"] is None:
        from .demo import COOKIE, demoApp, demoConfig

        demo = demoConfig(options["cookie"] or COOKIE)
        config = attrs.evolve(
            config, cookie=demo.cookie, allowReclaim=demo.allowReclaim
        )
        sessions = Sessions(config, database)
        root: IResource = demoApp(sessions).resource()
    else:
        root = loadApp(options["app"])
        if isinstance(root, SessionResource):
            sessions = root.sessions
            sessions.useDatabase(database)
        else:
            sessions = Sessions(config, database)
            root = sessions.wrap(root)
    sessions.onDestroy(_logDestroyed)
    parent = service.MultiService()
    _SessionsService(sessions).setServiceParent(parent)
    site = Site(root)
    for description in options["listen"]:
        strports.service(description, site).setServiceParent(parent)
    return parent
