"""
The threads of a persistent database: its writer, and one thread for the
long reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from ..errors import DatabaseError
from ._writer import Writer

T = TypeVar("T")

_log = Logger()

SHUTDOWN_WAIT = 5.0
"""
The longest the reactor's shutdown waits for the writer thread, in seconds:
LMDB's write lock, held by another process, has no bound of its own.
"""


class _DaemonThread(threading.Thread):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


class _ReadingPool(ThreadPool):
    """
    A thread pool whose thread does not keep the process alive, as the
    writer's does not: a server that fails to start (twistd could not
    listen) exits, its database open.  A reactor that stops stops both
    threads first (L{Threads}).
    """

    threadFactory = _DaemonThread


class Threads:
    """
    The threads of a persistent database: its L{Writer}, and one thread for
    the long reads (counting, listing), stopped when the reactor shuts down
    or the database closes, whichever comes first.

    @ivar writer: the writer thread.
    """

    def __init__(
        self,
        writer: Writer,
        threads: IReactorThreads,
        name: str,
        release: Callable[[], None],
    ) -> None:
        """
        @param writer: the writer thread.
        @param threads: what delivers the reading thread's results.
        @param name: the reading thread's name.
        @param release: what closes the database's files and connections
            once both threads have stopped.
        """
        self.writer = writer
        self._name = name
        self._threads = threads
        self._release = release
        self._reads = _ReadingPool(minthreads=1, maxthreads=1, name=name)
        self._reads.start()
        # The threads must not outlive the reactor, closed or not.
        self._stopTrigger: Any = cast(Any, threads).addSystemEventTrigger(
            "during", "shutdown", self._stop
        )

    def read(self, work: Callable[..., T], *args: Any) -> Deferred[T]:
        """
        @return: a L{Deferred} firing with C{work(*args)}, run in the
            reading thread; failing with L{DatabaseError} once the database
            is closed (a stopped pool would never run it).
        """
        if self._reads.joined:
            return fail(DatabaseError("the session database is closed"))
        return deferToThreadPool(cast(Any, self._threads), self._reads, work, *args)

    def close(self) -> Deferred[None]:
        """
        Commit what is queued, stop both threads and release the database;
        at most L{SHUTDOWN_WAIT} for the writer, as at the reactor's
        shutdown (twistd closes the database before it, in the C{"before"}
        phase).  A writer still waiting for the database then is left
        running, the database open (released once it has stopped, if it
        ever does), and a warning says so.

        @return: a L{Deferred} firing once done, or once the wait is over.
        """
        if self._stopTrigger is None:
            return succeed(None)
        cast(Any, self._threads).removeSystemEventTrigger(self._stopTrigger)
        self._stopTrigger = None
        closed: Deferred[None] = Deferred()
        timer = cast(Any, self._threads).callLater(SHUTDOWN_WAIT, self._gaveUp, closed)

        def writerStopped(_: object) -> None:
            if closed.called:
                # Too late for the caller, who was told: release anyway.
                self._release()
                return
            timer.cancel()
            self._stopReads()
            closed.callback(None)

        self.writer.close().addCallback(writerStopped)
        return closed

    def _gaveUp(self, closed: Deferred[None]) -> None:
        """
        The writer has not stopped within L{SHUTDOWN_WAIT} of L{close}:
        stop without it.
        """
        self._warnStillWaiting()
        self._reads.stop()
        closed.callback(None)

    def closeNow(self) -> None:
        """
        Stop both threads and release the database, blocking until they
        have: what nothing was submitted to is closed this way before the
        process forks (twistd, daemonizing), as threads do not survive a
        fork.
        """
        if self._stopTrigger is None:
            return
        cast(Any, self._threads).removeSystemEventTrigger(self._stopTrigger)
        self._stopTrigger = None
        self._stop()

    def _stop(self) -> None:
        if self.writer.join(SHUTDOWN_WAIT):
            self._stopReads()
            return
        self._warnStillWaiting()
        self._reads.stop()

    def _warnStillWaiting(self) -> None:
        # The database stays open: the writer thread is still in it.
        _log.warn(
            "{name}: the writer still waits for the database after {seconds} s"
            " (another process holds its write lock?); stopping without it,"
            " its batch unacknowledged",
            name=self._name,
            seconds=SHUTDOWN_WAIT,
        )

    def _stopReads(self) -> None:
        self._reads.stop()
        self._release()
