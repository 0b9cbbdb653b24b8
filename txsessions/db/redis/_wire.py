"""
How the request path's commands travel to Redis and their replies come back:
a save's arguments, written as the C{SAVE} script reads them, and a load's
and a save's replies, read into what the caller needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from json.encoder import encode_basestring as _quoted
from typing import Any

from twisted.logger import Logger

from ..._fields import LoadedParts, changeParts, storedRecord
from ...errors import CounterRangeError, DatabaseError
from ...ids import redact
from ...records import SessionChanges, StoredSession, mayChangeOwner
from ...values import isInt64
from . import _scripts as scripts
from ._connection import bulk

_log = Logger()

_decode = json.JSONDecoder().raw_decode
"""
How a C{LOAD} script's reply is read: its JSON object, a C{dict}.
"""

_INT64_TEXT = re.compile(r"-?[0-9]{1,19}\Z")
"""
The text of an integer, as Redis writes one: at most 19 digits.
"""

_SAVE_HEAD = '["%d","%s","%s","%d","%d","%r","%s","%.6f","%d","%d"'
"""
The first ten arguments of the C{SAVE} script, as L{saveArguments} writes
them: each is digits, a number's C{repr} or nothing, which JSON takes as
they are.
"""


def saveArguments(
    changes: SessionChanges, now: float, ttlText: str, deadline: float
) -> str:
    """
    A save's arguments as they travel: one compact JSON array of strings,
    which the C{SAVE} script decodes: one argument to frame rather than one
    per change.  Written here rather than by a C{JSONEncoder}, whose text
    for the same list it is, character for character, in half the time
    (the names and values escaped by the encoder's own C{encode_basestring}).

    @param changes: what to save.
    @param now: the manager's clock.
    @param ttlText: the TTL in milliseconds of a session without a lifetime.
    @param deadline: when the write may no longer land, in Redis's clock.
    """
    return partsArguments(now, ttlText, deadline, *changeParts(changes))


def partsArguments(
    now: float,
    ttlText: str,
    deadline: float,
    create: bool,
    times: tuple[float, float | None] | None,
    clear: bool,
    deleted: Collection[str],
    updated: Mapping[str, str],
    increments: Mapping[str, int],
) -> str:
    """
    L{saveArguments}, given the fields of the L{SessionChanges} in order
    after the rest (its lifetime as when it was created and expires), as
    L{RedisDatabase.saveParts
    <txsessions.db.redis.RedisDatabase.saveParts>} takes them.
    """
    if times is None:
        created = expires = ""
    else:
        created = repr(times[0])
        expires = "" if times[1] is None else repr(times[1])
    parts = [
        _SAVE_HEAD
        % (
            create,
            created,
            expires,
            times is not None,
            clear,
            now,
            ttlText,
            deadline,
            # The script reads the owner before the changes only when they
            # may change it, to take the session out of its owner's set.
            mayChangeOwner(create, clear, updated, deleted),
            len(deleted),
        )
    ]
    for name in deleted:
        parts.append(_quoted(name))
    parts.append(f'"{len(updated)}"')
    for name, value in updated.items():
        parts.append(_quoted(name))
        parts.append(_quoted(value))
    parts.append(f'"{len(increments)}"')
    for name, delta in increments.items():
        parts.append(_quoted(name))
        parts.append(_quoted(str(delta)))
    return ",".join(parts) + "]"


def evalshaHead(script: str) -> bytes:
    """
    The start of an C{EVALSHA} of C{script} with one key, after the line
    that counts the command's arguments.
    """
    return bulk("EVALSHA") + bulk(scripts.sha1(script)) + bulk(1)


def sessionParts(reply: str | None, key: str, now: float) -> LoadedParts | None:
    """
    The session a C{LOAD} script reply holds, if it is live and can be
    read, in parts (see L{LoadedParts <txsessions._fields.LoadedParts>}).

    @param reply: the script's reply: the session's hash as one JSON object.
    @param key: the session's store key, for the log.
    @param now: when the load began, in the manager's clock.
    """
    if not reply:
        return None
    try:
        fields = _decode(reply)[0]
        created = float(fields.pop(scripts.CREATED))
        expires = fields.pop(scripts.EXPIRES, None)
        if expires is not None:
            expires = float(expires)
    except (KeyError, ValueError, TypeError, AttributeError):
        _log.warn("session {key} is corrupt; ignored", key=redact(key))
        return None
    # Lifetime.hasExpired, before building one.
    if expires is not None and now >= expires:
        return None
    return created, expires, fields


def storedSession(reply: str | None, key: str, now: float) -> StoredSession | None:
    """
    L{sessionParts}, as the L{StoredSession} that a load gives.
    """
    return storedRecord(sessionParts(reply, key, now))


def savedReply(
    reply: Any, increments: Collection[str] = ()
) -> Mapping[str, int] | None:
    """
    What a C{SAVE} script's reply says: C{None} when the session was gone,
    else each incremented field's new value (none: the integer reply 1).

    @param reply: the reply, an error reply as the exception txredisapi
        makes of it.
    @param increments: the fields the save incremented, in the order it
        sent them.
    @raise CounterRangeError: when the script refused an increment that
        Redis cannot hold (its error C{RANGE}; nothing was saved).
    @raise DatabaseError: when the
        reply is none the script sends: 1 when nothing was incremented,
        else each incremented field, in order, and its new value, a 64-bit
        integer.
    @raise Exception: any other error reply, as txredisapi made it.
    """
    if isinstance(reply, Exception):
        if str(reply).startswith("RANGE "):
            raise CounterRangeError(
                "Redis refused the save: a counter would leave the 64-bit "
                "integers Redis counts in; nothing was saved"
            ) from reply
        raise reply
    if reply is None:
        return None
    if not increments:
        if type(reply) is int and reply == 1:
            return {}
    elif (
        type(reply) is list
        and len(reply) == 2 * len(increments)
        and reply[::2] == list(increments)
    ):
        values = {}
        for name, text in zip(increments, reply[1::2], strict=True):
            if type(text) is not str or _INT64_TEXT.match(text) is None:
                break
            value = int(text)
            if not isInt64(value):
                break
            values[name] = value
        else:
            return values
    raise DatabaseError(
        "Redis answered a save with a reply its script never sends "
        f"({type(reply).__name__}); the save may or may not have landed"
    )
