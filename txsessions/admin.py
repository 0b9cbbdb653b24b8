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

import getopt
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import IO, Any, NoReturn

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock, react
from twisted.python import usage

from . import __version__
from .db import checkDatabaseURL, openDatabase, withoutPassword
from .errors import DatabaseError
from .ids import isWellFormedID, redact, storeKey
from .interfaces import IDatabase
from .records import DestroyReason, Lifetime, SessionInfo
from .session import splitFields

OK = 0
"""
The exit status of a command that did its work.
"""

NOT_FOUND = 1
"""
The exit status when the session named is not there, or when a
confirmation is declined.
"""

USAGE = 2
"""
The exit status of a usage error: an unknown option, a bad database URL, an
ambiguous key prefix.
"""

FAILED = 3
"""
The exit status when the database fails or does not answer in time.
"""

KEY_PREFIX = 12
"""
How many characters of a store key the command shows.
"""

MIN_PREFIX = 8
"""
How many characters of a store key name a session, at the least.
"""

_HEX = re.compile(r"[0-9a-f]{1,64}")

_MEMORY = (
    "the memory: database lives inside one server process, so there is nothing "
    "to administer from outside; give the sqlite:, lmdb: or redis:// URL the "
    "server uses"
)


class AdminError(Exception):
    """
    A command cannot do what it was asked; the message is the one line
    printed, the code the exit status.

    @ivar code: the exit status: L{NOT_FOUND}, L{USAGE} or L{FAILED}.
    """

    def __init__(self, code: int, message: str) -> None:
        """
        @param code: the exit status.
        @param message: what went wrong, in one line.
        """
        super().__init__(message)
        self.code = code


_FLAGS = [["json", None, "Write one JSON document to standard output, for scripts."]]
_PARAMETERS = [["database", "d", None, "The session database URL."]]
_OWNER = ["owner", None, None, "Only the sessions of this owner (Session.setOwner)."]


def _takesValue(name: str, shortOpt: str, longOpt: Sequence[str]) -> bool:
    """
    Whether a getopt option (C{--database}, C{-d}) takes a value.
    """
    if name.startswith("--"):
        return f"{name[2:]}=" in longOpt
    return f"{name[1]}:" in shortOpt


class _Command(usage.Options):
    """
    A command: its options (C{--json} and C{--database}, which may also come
    before the command's name), and its work.
    """

    optFlags = _FLAGS
    optParameters = _PARAMETERS

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse the command's options, which may come after its argument too
        (C{show ID --json}), as in GNU tools; after C{--}, all are arguments.

        @param options: the command's part of the command line.
        @raise usage.UsageError: on an unknown option, or one missing its
            value.
        """
        args = list(sys.argv[1:] if options is None else options)
        try:
            found, rest = getopt.gnu_getopt(args, self.shortOpt, self.longOpt)
        except getopt.GetoptError as e:
            raise usage.UsageError(str(e)) from None
        ordered: list[str] = []
        for name, value in found:
            ordered.append(name)
            if _takesValue(name, self.shortOpt, self.longOpt):
                ordered.append(value)
        super().parseOptions([*ordered, "--", *rest])

    async def run(self, database: IDatabase, out: IO[str], options: Options) -> None:
        """
        Do the command's work.

        @param database: the open database.
        @param out: where the results go.
        @param options: the whole command line: C{options.asJSON} asks for
            one JSON document rather than text.
        @raise AdminError: when it cannot.
        """
        raise NotImplementedError()


class CountOptions(_Command):
    """
    C{txsessions count}: how many sessions are live.
    """

    synopsis = "[--json]"
    longdesc = "Print the number of live sessions."

    async def run(self, database: IDatabase, out: IO[str], options: Options) -> None:
        """
        See L{_Command.run}.
        """
        n = await database.count()
        _write(out, options.asJSON, {"count": n}, f"{n}\n")


class ListOptions(_Command):
    """
    C{txsessions list}: a table of the live sessions, oldest first.
    """

    synopsis = "[--json] [--owner OWNER]"
    longdesc = (
        "Print a table of the live sessions, oldest first: the first "
        f"{KEY_PREFIX} characters of each one's store key (databases hold the "
        "SHA-256 of each session id, never the id), when it was created, when "
        "it expires (ISO 8601, UTC; 'never' for a session without a lifetime), "
        "and the bytes its values take.  Give the key prefix to show or destroy.  "
        "With --owner, only that owner's sessions, from the owner index, with "
        "when each was last seen and its user agent."
    )
    optParameters = [*_PARAMETERS, _OWNER]

    async def run(self, database: IDatabase, out: IO[str], options: Options) -> None:
        """
        See L{_Command.run}.
        """
        owner = self["owner"]
        if owner is not None:
            found = await database.sessionsOf(owner)
        else:
            found = await database.sessions()
        found.sort(key=lambda info: (info.lifetime.createdAt, info.key))
        rows = [_describe(info) for info in found]
        if options.asJSON:
            _write(out, True, {"sessions": rows}, "")
            return
        if owner is not None:
            _ownersTable(out, rows)
            return
        row = "{:<" + str(KEY_PREFIX) + "}  {:<20}  {:<20}  {:>8}\n"
        out.write(row.format("KEY", "CREATED", "EXPIRES", "SIZE"))
        for shown in rows:
            out.write(
                row.format(
                    shown["key"],
                    shown["created"],
                    shown["expires"] or "never",
                    shown["size"],
                )
            )


class _OneSession(_Command):
    """
    A command on one session, named by its id or a store key prefix.
    """

    name = ""
    "The command's name, for messages."
    given = ""
    "The session id or key prefix given."

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse the command's options, taking a session id that starts with
        C{-} (as one in 32 do) as the argument rather than an option.

        @param options: the command's part of the command line.
        """
        args = list(sys.argv[1:] if options is None else options)
        if "--" not in args:
            ids = [a for a in args if a.startswith("-") and isWellFormedID(a)]
            if ids:
                args = [a for a in args if a not in ids] + ["--", *ids]
        super().parseOptions(args)

    def parseArgs(self, *args: str) -> None:
        """
        Take the one argument: a session id, or the start of a store key.

        @raise usage.UsageError: when there is not exactly one.
        """
        if len(args) != 1:
            raise usage.UsageError(
                f"{self.name} takes one session id or store key prefix"
            )
        self.given = args[0]


class ShowOptions(_OneSession):
    """
    C{txsessions show ID}: one session's lifetime and values.
    """

    name = "show"
    synopsis = "[--json] ID"
    longdesc = (
        "Print a session's lifetime and values (as JSON).  ID is the session id "
        "from a cookie, or the start of its store key, as list prints it (at "
        f"least {MIN_PREFIX} characters, naming one session only)."
    )

    async def run(self, database: IDatabase, out: IO[str], options: Options) -> None:
        """
        See L{_Command.run}.
        """
        key = await resolve(database, self.given)
        stored = await database.load(key)
        if stored is None:
            raise AdminError(NOT_FOUND, f"session {_prefix(key)} is gone")
        document = _describe(SessionInfo.of(key, stored))
        document.update(_fields(stored.values))
        if options.asJSON:
            _write(out, True, document, "")
            return
        out.write(f"key      {document['key']}\n")
        out.write(f"created  {document['created']}\n")
        out.write(f"expires  {document['expires'] or 'never'}\n")
        out.write(f"size     {document['size']} bytes\n")
        for name in ["values", "flashes", "immutable"]:
            if name == "values" or document.get(name):
                shown = _dumps(document[name], indent=2).replace("\n", "\n  ")
                out.write(f"{name}\n  {shown}\n")


class DestroyOptions(_OneSession):
    """
    C{txsessions destroy ID}: destroy one session; C{txsessions destroy
    --owner OWNER}: every session of one owner, once confirmed.
    """

    name = "destroy"
    synopsis = "[--json] ID | --owner OWNER [--yes]"
    longdesc = (
        "Destroy a session, with the reason 'admin'.  The next request with "
        "its cookie has no session; with Redis, every server's onDestroy "
        "listeners hear of it too (SQLite and LMDB tell no other process).  "
        "ID is the session id from a cookie, or the start of its store key, "
        f"as list prints it (at least {MIN_PREFIX} characters, naming one "
        "session only).  With --owner and no ID, destroy every session of that "
        "owner, with the reason 'owner' (log the user out everywhere): asks you "
        "to type yes on the terminal first, unless --yes is given."
    )
    optParameters = [*_PARAMETERS, _OWNER]
    optFlags = [*_FLAGS, ["yes", "y", "With --owner: do not ask for confirmation."]]

    def parseArgs(self, *args: str) -> None:
        """
        Take the one argument, or none with C{--owner}.

        @raise usage.UsageError: when there is not exactly one, or one is
            given with C{--owner}.
        """
        if self["owner"] is None:
            super().parseArgs(*args)
        elif args:
            raise usage.UsageError("destroy takes a session id or --owner, not both")

    async def run(self, database: IDatabase, out: IO[str], options: Options) -> None:
        """
        See L{_Command.run}.
        """
        owner = self["owner"]
        if owner is not None:
            n = 0
            for info in await database.sessionsOf(owner):
                n += await database.destroy(info.key, DestroyReason.owner)
            document = {"destroyed": n, "owner": owner}
            _write(out, options.asJSON, document, f"destroyed {_sessions(n)}\n")
            return
        key = await resolve(database, self.given)
        if not await database.destroy(key, DestroyReason.admin):
            raise AdminError(NOT_FOUND, f"session {_prefix(key)} is gone")
        document = {"destroyed": 1, "key": _prefix(key)}
        _write(out, options.asJSON, document, f"destroyed session {_prefix(key)}\n")


class DestroyAllOptions(_Command):
    """
    C{txsessions destroy-all}: destroy every session, once confirmed.
    """

    synopsis = "[--json] [--yes]"
    longdesc = (
        "Destroy every session, with the reason 'admin': every user is logged "
        "out.  Asks you to type yes on the terminal first, unless --yes is "
        "given; without a terminal, --yes is required."
    )
    optFlags = [["yes", "y", "Do not ask for confirmation."]]

    async def run(self, database: IDatabase, out: IO[str], options: Options) -> None:
        """
        See L{_Command.run}.
        """
        n = await database.destroyAll(DestroyReason.admin)
        _write(out, options.asJSON, {"destroyed": n}, f"destroyed {_sessions(n)}\n")


class PurgeExpiredOptions(_Command):
    """
    C{txsessions purge-expired}: remove the sessions whose lifetime ended.
    """

    synopsis = "[--json]"
    longdesc = (
        "Remove the sessions whose lifetime has ended.  A running server "
        "removes them on time itself, and at start-up the ones that ended "
        "while it was down; this is for an SQLite or LMDB database no server "
        "opens.  Redis removes expired sessions itself: for Redis this reports 0."
    )

    async def run(self, database: IDatabase, out: IO[str], options: Options) -> None:
        """
        See L{_Command.run}.
        """
        n = await database.purgeExpired()
        text = f"purged {_sessions(n, 'expired ')}"
        if checkDatabaseURL(options.url) not in ("sqlite", "lmdb"):
            text += " (Redis removes expired sessions itself)"
        _write(out, options.asJSON, {"purged": n}, text + "\n")


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
    optFlags = _FLAGS
    optParameters = [
        *_PARAMETERS,
        ["timeout", "t", "30", "Give up on the database after this many seconds."],
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

    def opt_version(self) -> NoReturn:
        """
        Print txsessions' version and exit.
        """
        print(f"txsessions {__version__}")
        raise SystemExit(0)

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
            raise usage.UsageError(_MEMORY)
        path = self.url.partition(":")[2]
        if scheme == "sqlite" and not os.path.isfile(path):
            raise usage.UsageError(f"no SQLite session database at {path}")
        if scheme == "lmdb" and not os.path.isfile(os.path.join(path, "data.mdb")):
            raise usage.UsageError(f"no LMDB session database at {path}")


async def resolve(database: IDatabase, given: str) -> str:
    """
    Find the session a command line names.

    @param database: where to look.
    @param given: a session id (as its cookie holds it), or at least
        L{MIN_PREFIX} hexadecimal characters starting its store key, with or
        without the ellipsis L{txsessions.ids.redact} adds.
    @return: its store key.
    @raise AdminError: with L{NOT_FOUND} when no live session matches, with
        L{USAGE} when C{given} is neither an id nor a long enough prefix, or
        when it starts several sessions' keys.
    """
    given = given.strip().rstrip("\N{HORIZONTAL ELLIPSIS}")
    isID = isWellFormedID(given)
    prefix = given.lower()
    isPrefix = len(prefix) >= MIN_PREFIX and _HEX.fullmatch(prefix) is not None
    shown = _prefix(given) if isPrefix or not isID else redact(given)
    if not isID and not isPrefix:
        raise AdminError(
            USAGE,
            f"{shown!r} is neither a session id nor a store key prefix of at "
            f"least {MIN_PREFIX} hexadecimal characters (as list prints them)",
        )
    found: set[str] = set()
    if isID:
        key = storeKey(given)
        if await database.load(key) is not None:
            found.add(key)
    if isPrefix:
        found.update(info.key for info in await database.sessions(prefix))
    if not found:
        raise AdminError(NOT_FOUND, f"no live session matches {shown}")
    if len(found) > 1:
        raise AdminError(
            USAGE,
            f"{shown} is ambiguous: {len(found)} sessions' keys start with it; "
            "give more characters",
        )
    return found.pop()


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
    command: _Command = options.subOptions
    try:
        database = openDatabase(options.url, readingClock(reactor))
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
        return _fail(
            err,
            FAILED,
            f"the database did not answer within {options.timeout:g} seconds",
        )
    except Exception as e:
        return _fail(err, FAILED, f"the database failed: {_oneLine(e)}")
    finally:
        await _close(database, reactor)
    return OK


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


def _prefix(key: str) -> str:
    return key[:KEY_PREFIX]


def _time(seconds: float) -> str:
    try:
        moment = datetime.fromtimestamp(seconds, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return repr(seconds)  # beyond what a date can show
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _describe(info: SessionInfo) -> dict[str, Any]:
    lifetime: Lifetime = info.lifetime
    described: dict[str, Any] = {
        "key": _prefix(info.key),
        "created": _time(lifetime.createdAt),
        "expires": None if lifetime.expiresAt is None else _time(lifetime.expiresAt),
        "size": info.size,
    }
    if info.owner is not None:
        described["owner"] = info.owner
        described["lastSeen"] = _time(info.lastSeen or 0.0)
        described["userAgent"] = info.userAgent
    return described


def _ownersTable(out: IO[str], rows: list[dict[str, Any]]) -> None:
    """
    Write the table of C{list --owner}.
    """
    row = "{:<" + str(KEY_PREFIX) + "}  {:<20}  {:<20}  {:<20}  {}\n"
    out.write(row.format("KEY", "CREATED", "LAST SEEN", "EXPIRES", "USER AGENT"))
    for shown in rows:
        agent = "".join(c if c.isprintable() else "?" for c in shown["userAgent"])
        out.write(
            row.format(
                shown["key"],
                shown["created"],
                shown["lastSeen"],
                shown["expires"] or "never",
                agent,
            )
        )


def _fields(fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        values, immutables, flashes = splitFields(fields)
    except ValueError:
        return {"values": dict(fields)}
    return {"values": values, "flashes": flashes, "immutable": sorted(immutables)}


def _sessions(n: int, kind: str = "") -> str:
    return f"{n} {kind}session{'' if n == 1 else 's'}"


def _dumps(document: object, indent: int | None = None) -> str:
    return json.dumps(document, ensure_ascii=False, indent=indent, default=str)


def _write(out: IO[str], asJSON: bool, document: object, text: str) -> None:
    out.write(_dumps(document) + "\n" if asJSON else text)
    out.flush()
