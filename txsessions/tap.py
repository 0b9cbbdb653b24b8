# -*- test-case-name: tests.test_tap -*-
"""
The C{twistd txsessions} plugin: serve the demo, or your own Klein app or
resource, with sessions.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from twisted.application import service, strports
from twisted.internet.defer import Deferred
from twisted.python import usage
from twisted.web.resource import IResource
from twisted.web.server import Site

from .config import Config
from .db import checkDatabaseURL, openDatabase
from .errors import DatabaseError
from .interfaces import IDatabase
from .manager import Sessions
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
    ]

    database: IDatabase
    "The database C{--database} names, opened by L{postOptions}."

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
            Config(cookie=self["cookie"] or "txsessionid")
            checkDatabaseURL(self["database"])
            # Opened now, so that an unusable file is a clear message at
            # start-up rather than a traceback.
            self.database = openDatabase(self["database"])
        except (ValueError, DatabaseError) as e:
            raise usage.UsageError(str(e)) from None


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
    if options["app"] is None:
        from .demo import COOKIE, demoApp, demoConfig

        sessions = Sessions(demoConfig(options["cookie"] or COOKIE), database)
        root: IResource = demoApp(sessions).resource()
    else:
        root = loadApp(options["app"])
        if isinstance(root, SessionResource):
            sessions = root.sessions
            sessions.useDatabase(database)
        else:
            config = Config(cookie=options["cookie"] or "txsessionid")
            sessions = Sessions(config, database)
            root = sessions.wrap(root)
    parent = service.MultiService()
    _SessionsService(sessions).setServiceParent(parent)
    site = Site(root)
    for description in options["listen"]:
        strports.service(description, site).setServiceParent(parent)
    return parent
