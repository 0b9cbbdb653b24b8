# -*- test-case-name: tests.test_manager -*-
"""
L{Parts}: what the request path works with, as one L{txsessions.Sessions}
manager owns it.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from ._calls import DatabaseCalls, answeredAtOnce, loadInParts, saveInParts
from ._policy import LifetimePolicy
from .config import Config
from .errors import SessionIDError
from .ids import generateSessionID, isWellFormedID, redact, storeKey
from .interfaces import IDatabase
from .metrics import Metrics

_log = Logger()


class Parts:
    """
    What a request session works with, as one L{txsessions.Sessions}
    manager owns it.

    @ivar config: the configuration.
    @ivar database: where sessions live (replaced by L{use}).
    @ivar clock: the time source.
    @ivar loadAtOnce: the database's synchronous load, if it has one (see
        L{answeredAtOnce}).
    @ivar saveAtOnce: the database's synchronous save, if it has one.
    @ivar loadParts: the database's load in parts, if it has one (see
        L{loadInParts}).
    @ivar saveParts: the database's save in parts, if it has one (see
        L{saveInParts}).
    @ivar calls: how database calls are made.
    @ivar policy: the lifetime rules.
    @ivar metrics: what is counted.
    @ivar loadLatency: C{metrics.latency["load"]}.
    @ivar saveLatency: C{metrics.latency["save"]}.
    @ivar cookieName: the cookie's name, as bytes.
    """

    __slots__ = (
        "config",
        "clock",
        "database",
        "loadAtOnce",
        "saveAtOnce",
        "loadParts",
        "saveParts",
        "calls",
        "policy",
        "metrics",
        "loadLatency",
        "saveLatency",
        "cookieName",
    )

    def __init__(
        self, config: Config, clock: IReactorTime, database: IDatabase, metrics: Metrics
    ) -> None:
        self.config = config
        self.clock = clock
        self.use(database)
        self.metrics = metrics
        self.loadLatency = metrics.latency["load"]
        self.saveLatency = metrics.latency["save"]
        self.calls = DatabaseCalls(clock, metrics, config.databaseTimeout)
        self.policy = LifetimePolicy(config)
        self.cookieName = config.cookie.encode("ascii")

    def use(self, database: IDatabase) -> None:
        """
        Keep sessions in C{database} from now on (C{useDatabase}).
        """
        self.database = database
        self.loadAtOnce = answeredAtOnce(database, "load")
        self.saveAtOnce = answeredAtOnce(database, "save")
        self.loadParts = loadInParts(database)
        self.saveParts = saveInParts(database)

    def created(self, key: str) -> None:
        """Count (and, with C{logSessionEvents}, log) a session first saved."""
        self.metrics.created += 1
        if self.config.logSessionEvents:
            _log.info("session {key} created", key=redact(key), sessionEvent="created")

    def newID(self, request: IRequest) -> tuple[str, str]:
        """
        @return: a new session id from C{config.sessionIDGenerator}, and its
            store key.
        @raise SessionIDError: when the generator made no valid id.
        """
        generator = self.config.sessionIDGenerator
        if generator is generateSessionID:
            sessionID = generateSessionID()
            return sessionID, storeKey(sessionID)
        sessionID = generator(request)
        if not isinstance(sessionID, str) or not isWellFormedID(sessionID):
            raise SessionIDError(
                "the session id generator must return 22 to 128 characters of "
                "A-Z a-z 0-9 _ -"
            )
        return sessionID, storeKey(sessionID)
