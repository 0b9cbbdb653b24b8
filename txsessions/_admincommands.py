# -*- test-case-name: tests.test_admin -*-
"""
The commands of C{txsessions}, the admin command (L{txsessions.admin}):
count, list, show, destroy, destroy-all and purge-expired, their options,
and how they print what they find.
"""

from __future__ import annotations

import getopt
import json
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import IO, Any, NoReturn, Protocol

from twisted.python import usage

from . import __version__
from ._owners import destroyOwner
from .codec import looksSealed
from .db import checkDatabaseURL
from .ids import isWellFormedID, redact, storeKey
from .interfaces import IDatabase
from .records import DestroyReason, Lifetime, SessionInfo
from .session import splitFields


class CommandLine(Protocol):
    """
    What a command reads of the whole command line.
    """

    asJSON: bool
    """
    Whether to write one JSON document rather than text.
    """

    url: str
    """
    The database URL.
    """

    def opened(self, given: str) -> str | None:
        """
        @return: the session id sealed in C{given}, a signed cookie value,
            when C{--secret-file} opens it under the cookie's name; else
            C{None}.
        """

    def canOpen(self) -> bool:
        """
        @return: whether C{--secret-file} was given.
        """


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

MEMORY = (
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


FLAGS = [["json", None, "Write one JSON document to standard output, for scripts."]]
PARAMETERS = [["database", "d", None, "The session database URL."]]
OWNER = ["owner", None, None, "Only the sessions of this owner (Session.setOwner)."]


def takesValue(name: str, shortOpt: str, longOpt: Sequence[str]) -> bool:
    """
    Whether a getopt option (C{--database}, C{-d}) takes a value.
    """
    if name.startswith("--"):
        return f"{name[2:]}=" in longOpt
    return f"{name[1]}:" in shortOpt


def printVersion() -> NoReturn:
    """
    Print txsessions' version and exit: C{--version}, before a command or
    after it.
    """
    print(f"txsessions {__version__}")
    raise SystemExit(0)


class Command(usage.Options):
    """
    A command: its options (C{--json} and C{--database}, which may also come
    before the command's name), and its work.
    """

    optFlags = FLAGS
    optParameters = PARAMETERS

    def opt_version(self) -> NoReturn:
        """
        Print txsessions' version and exit.
        """
        printVersion()

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
            if takesValue(name, self.shortOpt, self.longOpt):
                ordered.append(value)
        super().parseOptions([*ordered, "--", *rest])

    async def run(
        self, database: IDatabase, out: IO[str], options: CommandLine
    ) -> None:
        """
        Do the command's work.

        @param database: the open database.
        @param out: where the results go.
        @param options: the whole command line: C{options.asJSON} asks for
            one JSON document rather than text.
        @raise AdminError: when it cannot.
        """
        raise NotImplementedError()


class CountOptions(Command):
    """
    C{txsessions count}: how many sessions are live.
    """

    synopsis = "[--json]"
    longdesc = "Print the number of live sessions."

    async def run(
        self, database: IDatabase, out: IO[str], options: CommandLine
    ) -> None:
        """
        See L{Command.run}.
        """
        n = await database.count()
        write(out, options.asJSON, {"count": n}, f"{n}\n")


class ListOptions(Command):
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
    optParameters = [*PARAMETERS, OWNER]

    async def run(
        self, database: IDatabase, out: IO[str], options: CommandLine
    ) -> None:
        """
        See L{Command.run}.
        """
        owner = self["owner"]
        if owner is not None:
            found = await database.sessionsOf(owner)
        else:
            found = await database.sessions()
        found.sort(key=lambda info: (info.lifetime.createdAt, info.key))
        rows = [describe(info) for info in found]
        if options.asJSON:
            write(out, True, {"sessions": rows}, "")
            return
        if owner is not None:
            ownersTable(out, rows)
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


class _OneSession(Command):
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

    async def run(
        self, database: IDatabase, out: IO[str], options: CommandLine
    ) -> None:
        """
        See L{Command.run}.
        """
        key = await resolve(database, self.given, options)
        stored = await database.load(key)
        if stored is None:
            raise AdminError(NOT_FOUND, f"session {keyPrefix(key)} is gone")
        document = describe(SessionInfo.of(key, stored))
        document.update(fields(stored.values))
        if options.asJSON:
            write(out, True, document, "")
            return
        out.write(f"key      {document['key']}\n")
        out.write(f"created  {document['created']}\n")
        out.write(f"expires  {document['expires'] or 'never'}\n")
        out.write(f"size     {document['size']} bytes\n")
        for name in ["values", "flashes", "immutable"]:
            if name == "values" or document.get(name):
                shown = dumps(document[name], indent=2).replace("\n", "\n  ")
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
    optParameters = [*PARAMETERS, OWNER]
    optFlags = [*FLAGS, ["yes", "y", "With --owner: do not ask for confirmation."]]

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

    async def run(
        self, database: IDatabase, out: IO[str], options: CommandLine
    ) -> None:
        """
        See L{Command.run}.
        """
        owner = self["owner"]
        if owner is not None:
            n = await destroyOwner(database, owner)
            document = {"destroyed": n, "owner": owner}
            write(out, options.asJSON, document, f"destroyed {sessionCount(n)}\n")
            return
        key = await resolve(database, self.given, options)
        if not await database.destroy(key, DestroyReason.admin):
            raise AdminError(NOT_FOUND, f"session {keyPrefix(key)} is gone")
        document = {"destroyed": 1, "key": keyPrefix(key)}
        write(out, options.asJSON, document, f"destroyed session {keyPrefix(key)}\n")


class DestroyAllOptions(Command):
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

    async def run(
        self, database: IDatabase, out: IO[str], options: CommandLine
    ) -> None:
        """
        See L{Command.run}.
        """
        n = await database.destroyAll(DestroyReason.admin)
        write(out, options.asJSON, {"destroyed": n}, f"destroyed {sessionCount(n)}\n")


class PurgeExpiredOptions(Command):
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

    async def run(
        self, database: IDatabase, out: IO[str], options: CommandLine
    ) -> None:
        """
        See L{Command.run}.
        """
        n = await database.purgeExpired()
        text = f"purged {sessionCount(n, 'expired ')}"
        if checkDatabaseURL(options.url) not in ("sqlite", "lmdb"):
            text += " (Redis removes expired sessions itself)"
        write(out, options.asJSON, {"purged": n}, text + "\n")


async def resolve(
    database: IDatabase, given: str, options: CommandLine | None = None
) -> str:
    """
    Find the session a command line names.

    @param database: where to look.
    @param given: a session id (as its cookie holds it, or sealed in a
        signed cookie value that C{options} can open), or at least
        L{MIN_PREFIX} hexadecimal characters starting its store key, with or
        without the ellipsis L{txsessions.ids.redact} adds.
    @param options: the command line.
    @return: its store key.
    @raise AdminError: with L{NOT_FOUND} when no live session matches, with
        L{USAGE} when C{given} is neither an id nor a long enough prefix, or
        when it starts several sessions' keys.
    """
    given = given.strip().rstrip("\N{HORIZONTAL ELLIPSIS}")
    opened = None if options is None else options.opened(given)
    sealed = opened is None and looksSealed(given)
    if opened is not None:
        given = opened
    isID = isWellFormedID(given)
    prefix = given.lower()
    isPrefix = len(prefix) >= MIN_PREFIX and _HEX.fullmatch(prefix) is not None
    shown = keyPrefix(given) if isPrefix or not isID else redact(given)
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
        said = f"no live session matches {shown}"
        if sealed and (options is None or not options.canOpen()):
            said += (
                ": it looks like a signed cookie value; give the server's "
                "--secret-file, and --cookie NAME"
            )
        elif sealed:
            said += (
                ": it does not open with --secret-file under the cookie's name "
                "(--cookie NAME, txsessionid or the demo's unless given)"
            )
        raise AdminError(NOT_FOUND, said)
    if len(found) > 1:
        raise AdminError(
            USAGE,
            f"{shown} is ambiguous: {len(found)} sessions' keys start with it; "
            "give more characters",
        )
    return found.pop()


def keyPrefix(key: str) -> str:
    return key[:KEY_PREFIX]


def showTime(seconds: float) -> str:
    try:
        moment = datetime.fromtimestamp(seconds, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return repr(seconds)  # beyond what a date can show
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(info: SessionInfo) -> dict[str, Any]:
    lifetime: Lifetime = info.lifetime
    described: dict[str, Any] = {
        "key": keyPrefix(info.key),
        "created": showTime(lifetime.createdAt),
        "expires": None if lifetime.expiresAt is None else showTime(lifetime.expiresAt),
        "size": info.size,
    }
    if info.owner is not None:
        described["owner"] = info.owner
        described["lastSeen"] = showTime(info.lastSeen or 0.0)
        described["userAgent"] = info.userAgent
    return described


def ownersTable(out: IO[str], rows: list[dict[str, Any]]) -> None:
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


def fields(fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        values, immutables, flashes = splitFields(fields)
    except ValueError:
        return {"values": dict(fields)}
    return {"values": values, "flashes": flashes, "immutable": sorted(immutables)}


def sessionCount(n: int, kind: str = "") -> str:
    return f"{n} {kind}session{'' if n == 1 else 's'}"


def dumps(document: object, indent: int | None = None) -> str:
    return json.dumps(document, ensure_ascii=False, indent=indent, default=str)


def write(out: IO[str], asJSON: bool, document: object, text: str) -> None:
    out.write(dumps(document) + "\n" if asJSON else text)
    out.flush()
