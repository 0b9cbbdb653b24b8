# -*- test-case-name: tests.test_admin -*-
"""
The admin command, C{txsessions} (or C{python -m txsessions}): count, list,
show and destroy the sessions of a persistent database from outside the
server, and purge the ones that expired while no server ran::

    txsessions --database sqlite:/var/lib/app/sessions.db list
    txsessions --database redis://127.0.0.1:6379/0 destroy 3f9a1c0b2e4d

Databases hold no session ids, only their store keys (the SHA-256 of each
id, L{txsessions.ids.storeKey}), so a session is named by the start of its
store key, as C{list} prints it, or by its full id, as copied from a cookie.
Nothing this command prints holds a full id or store key.

Exit status: 0 when done, 1 when the session named is not found (or a
confirmation is declined), 2 for a usage error, 3 when the database fails.
Errors are one line on standard error.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import IO, Any, NoReturn

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock, react
from twisted.python import usage

from ._admincommands import (
    FAILED,
    FLAGS,
    MEMORY,
    NOT_FOUND,
    OK,
    PARAMETERS,
    USAGE,
    AdminError,
    Command,
    CountOptions,
    DestroyAllOptions,
    DestroyOptions,
    ListOptions,
    PurgeExpiredOptions,
    ShowOptions,
    printVersion,
)
from .codec import CodecError, CookieCodec
from .config import MAX_LIFETIME, Config
from .db import checkDatabaseURL, openDatabase, withoutPassword
from .demo import COOKIE as DEMO_COOKIE
from .errors import DatabaseError
from .interfaces import IDatabase
from .tap import readKeys

__all__ = [
    "FAILED",
    "NOT_FOUND",
    "OK",
    "USAGE",
    "AdminError",
    "Options",
    "administer",
    "confirm",
    "main",
    "readingClock",
]


class Options(usage.Options):
    """
    The command line of C{txsessions}.
    """

    longdesc = (
        "Administer the sessions of a persistent txsessions database "
        "(sqlite:PATH, lmdb:PATH, redis://HOST:PORT/DB) from outside the "
        "server.  Sessions are named by the start of their store key (the "
        "SHA-256 of the session id) or by their id.  Exit status: 0 done, "
        "1 not found, 2 usage error, 3 database failure.  "
        "Run txsessions COMMAND --help for each command."
    )
    optFlags = FLAGS
    optParameters = [
        *PARAMETERS,
        [
            "timeout",
            "t",
            "30",
            "Give up on the database after this many seconds; each change's "
            "deadline too.",
        ],
        [
            "secret-file",
            None,
            None,
            "The server's --secret-file: an ID may then be a signed cookie "
            "value, as the server's cookies carry.",
        ],
        [
            "cookie",
            None,
            None,
            "The name of the server's session cookie, whose signed values "
            "--secret-file opens (default: txsessionid, or the demo's).",
        ],
    ]
    subCommands = [
        ["count", None, CountOptions, "Print the number of live sessions."],
        ["list", None, ListOptions, "List the live sessions (key prefixes)."],
        ["show", None, ShowOptions, "Show one session's lifetime and values."],
        ["destroy", None, DestroyOptions, "Destroy one session."],
        ["destroy-all", None, DestroyAllOptions, "Destroy every session."],
        [
            "purge-expired",
            None,
            PurgeExpiredOptions,
            "Remove expired sessions (SQLite, LMDB).",
        ],
    ]

    url = ""
    "The database URL, from C{--database} before or after the command."
    asJSON = False
    "Whether C{--json} was given, before or after the command."
    timeout = 30.0
    "The C{--timeout}, in seconds."
    codec: CookieCodec | None = None
    "What opens signed cookie values: C{--secret-file}'s keys."

    def opened(self, given: str) -> str | None:
        """
        See L{CommandLine.opened}.
        """
        if self.codec is None:
            return None
        names = [self["cookie"]] if self["cookie"] else [Config().cookie, DEMO_COOKIE]
        for name in names:
            try:
                return self.codec.decode(name, given)
            except CodecError:
                pass
        return None

    def canOpen(self) -> bool:
        """
        See L{CommandLine.canOpen}.
        """
        return self.codec is not None

    def opt_version(self) -> NoReturn:
        """
        Print txsessions' version and exit.
        """
        printVersion()

    def getSynopsis(self) -> str:
        """
        @return: the usage line, which a command's own continues.
        """
        synopsis = "Usage: txsessions --database URL"
        return synopsis if self.subCommand else synopsis + " COMMAND [--json] [ARGS]"

    def postOptions(self) -> None:
        """
        Check that a command and a usable persistent database are named.

        @raise usage.UsageError: when they are not.
        """
        if self.subCommand is None:
            raise usage.UsageError(
                "name a command: count, list, show, destroy, destroy-all, purge-expired"
            )
        command = self.subOptions
        self.url = command["database"] or self["database"]
        self.asJSON = bool(command["json"] or self["json"])
        try:
            self.timeout = float(self["timeout"])
        except ValueError:
            self.timeout = math.nan
        if not self.timeout > 0:
            raise usage.UsageError("--timeout takes a number of seconds above 0")
        if not self.url:
            raise usage.UsageError(
                "--database URL is required: the sqlite:, lmdb: or redis:// URL "
                "the server uses"
            )
        try:
            scheme = checkDatabaseURL(self.url)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if scheme == "memory":
            raise usage.UsageError(MEMORY)
        if self["cookie"] is not None and self["secret-file"] is None:
            raise usage.UsageError(
                "--cookie names the cookie whose signed values --secret-file "
                "opens: give --secret-file too"
            )
        if self["secret-file"] is not None:
            try:
                # Any age: the session is found whatever the cookie's.
                keys = readKeys(self["secret-file"])
                self.codec = CookieCodec(keys, maxAge=MAX_LIFETIME)
            except ValueError as e:
                raise usage.UsageError(str(e)) from None
        path = self.url.partition(":")[2]
        if scheme == "sqlite" and not os.path.isfile(path):
            raise usage.UsageError(f"no SQLite session database at {path}")
        if scheme == "sqlite" and not _holdsSessions(path):
            # Opening it as the database would add the sessions table.
            raise usage.UsageError(
                f"{path} holds no txsessions sessions: name the file the "
                "server's --database names"
            )
        if scheme == "lmdb" and not os.path.isfile(os.path.join(path, "data.mdb")):
            raise usage.UsageError(f"no LMDB session database at {path}")
        if scheme == "lmdb" and not _holdsLMDBSessions(path):
            # Opening it as the database would add txsessions' databases.
            raise usage.UsageError(
                f"{path} holds no txsessions sessions: name the directory the "
                "server's --database names"
            )


def _holdsLMDBSessions(path: str) -> bool:
    """
    @return: whether the LMDB environment at C{path} has txsessions'
        database, read without changing it; C{True} when it cannot be read
        (opening it as the database then says why).
    """
    try:
        import lmdb
    except ImportError:
        return True
    try:
        env = lmdb.open(path, readonly=True, max_dbs=2)
    except lmdb.Error:
        return True
    try:
        with env.begin() as txn:
            return txn.get(b"txsessions") is not None
    finally:
        env.close()


def _holdsSessions(path: str) -> bool:
    """
    @return: whether the SQLite file at C{path} has txsessions' table,
        read without changing the file (no table made, no journal mode set).
    """
    import sqlite3
    from pathlib import Path

    uri = Path(path).absolute().as_uri() + "?mode=rw"
    try:
        connection = sqlite3.connect(uri, uri=True)
        try:
            found = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                "AND name = 'txsessions'"
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return found is not None


def readingClock(reactor: IReactorTime) -> IReactorTime:
    """
    The clock a database opened by the command runs on: it tells the time
    the command started, and never runs the expirations a database
    schedules when it opens, so that only C{purge-expired} removes expired
    sessions.

    @param reactor: where the time comes from.
    @return: the clock.
    """
    clock = Clock()
    clock.rightNow = reactor.seconds()
    return clock


async def administer(options: Options, reactor: Any, out: IO[str], err: IO[str]) -> int:
    """
    Run a parsed, confirmed command line.

    @param options: the parsed command line.
    @param reactor: the reactor it runs on (an L{IReactorTime}).
    @param out: where results go.
    @param err: where the one line of an error goes.
    @return: the exit status.
    """
    command: Command = options.subOptions
    try:
        # Not a request's deadline (3 s), which would undo a long purge or
        # destroy-all, but the command's: a change the database has not made
        # within --timeout of being asked is not made.
        database = openDatabase(
            options.url, readingClock(reactor), deadline=options.timeout
        )
    except (ValueError, DatabaseError) as e:
        return _fail(err, USAGE if isinstance(e, ValueError) else FAILED, str(e))
    try:
        work = Deferred.fromCoroutine(command.run(database, out, options))
        await work.addTimeout(options.timeout, reactor)
    except AdminError as e:
        return _fail(err, e.code, str(e))
    except BrokenPipeError:
        raise
    except (CancelledError, DeferredTimeout):
        return _fail(err, FAILED, timedOut(options))
    except Exception as e:
        return _fail(err, FAILED, f"the database failed: {_oneLine(e)}")
    finally:
        await _close(database, reactor)
    return OK


def timedOut(options: Options) -> str:
    """
    @return: what to say when the command ran out of C{--timeout}.  SQLite
        and LMDB undo a change not made in time; Redis destroys every
        session in batches, so some may have been destroyed.
    """
    said = f"the database did not answer within {options.timeout:g} seconds"
    batched = options.subCommand == "destroy-all"
    if batched and not options.url.lower().startswith(("sqlite:", "lmdb:")):
        said += (
            "; Redis changes in batches, so some sessions may be gone: "
            "count tells how many are left"
        )
    return said


def confirm(options: Options, stdin: IO[str], err: IO[str]) -> None:
    """
    Ask, on the terminal, before destroying every session.

    @param options: the parsed command line.
    @param stdin: where the answer comes from.
    @param err: where the question goes.
    @raise AdminError: when there is no terminal to ask on and no C{--yes},
        or when the answer is not C{yes}.
    """
    command = options.subCommand
    owner = options.subOptions["owner"] if command == "destroy" else None
    if (command != "destroy-all" and owner is None) or options.subOptions["yes"]:
        return
    if not stdin.isatty():
        raise AdminError(USAGE, f"{command} asks on a terminal; without one, add --yes")
    if owner is None:
        err.write(
            f"Destroy every session in {withoutPassword(options.url)}, logging "
            "every user out? Type yes to go on: "
        )
    else:
        err.write(
            f"Destroy every session of {owner!r} in {withoutPassword(options.url)}, "
            "logging them out everywhere? Type yes to go on: "
        )
    err.flush()
    if stdin.readline().strip() != "yes":
        raise AdminError(NOT_FOUND, "not confirmed; nothing destroyed")


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The C{txsessions} console script: parse the command line, run the
    command on the reactor, and exit with its status.

    @param argv: the arguments, without the program name; C{sys.argv[1:]}
        when C{None}.
    """
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else list(argv))
        confirm(options, sys.stdin, sys.stderr)
    except usage.UsageError as e:
        message = f"{e} (see txsessions --help)"
        raise SystemExit(_fail(sys.stderr, USAGE, message)) from None
    except AdminError as e:
        raise SystemExit(_fail(sys.stderr, e.code, str(e))) from None
    except BrokenPipeError:
        _readerGone()

    async def run(reactor: Any) -> None:
        try:
            code = await administer(options, reactor, sys.stdout, sys.stderr)
        except BrokenPipeError:
            _readerGone()
        if code != OK:
            raise SystemExit(code)

    react(run)


def _readerGone() -> NoReturn:
    # Standard output was a pipe whose reader left (txsessions list | head):
    # stop quietly, and let the interpreter's last flush go nowhere.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(FAILED)


async def _close(database: IDatabase, reactor: Any) -> None:
    try:
        await database.close().addTimeout(5, reactor)
    except Exception:
        pass


def _fail(err: IO[str], code: int, message: str) -> int:
    err.write(f"txsessions: {_oneLine(message)}\n")
    err.flush()
    return code


def _oneLine(message: object) -> str:
    return " ".join(str(message).split()) or type(message).__name__
