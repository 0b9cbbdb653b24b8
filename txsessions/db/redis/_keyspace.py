"""
Keyspace notifications of expiries (C{notify-keyspace-events}), asked of
each server a connection reaches, adding to what the server already sends:
the flags its operator, or another application, set are kept.
"""

from __future__ import annotations

from typing import Any

SETTING = "notify-keyspace-events"
"""
The Redis setting that says which keyspace notifications are sent.
"""


def expiryFlags(current: str) -> str | None:
    """
    The C{notify-keyspace-events} flags that add expiry notifications to
    C{current}.

    @param current: the server's flags.
    @return: C{current} with C{E} (key events) and C{x} (expiries) added
        where missing (C{A}, every event, holds C{x}); or C{None} when it
        has them already.
    """
    missing = ""
    if "E" not in current:
        missing += "E"
    if "x" not in current and "A" not in current:
        missing += "x"
    return current + missing if missing else None


async def askForExpiries(connection: Any) -> None:
    """
    Make the server C{connection} reached send expiry notifications: read
    its flags (C{CONFIG GET}), and add to them what is missing (C{CONFIG
    SET}), if anything is.

    @param connection: a txredisapi connection.
    @raise Exception: what Redis answered when it refused either command
        (a managed Redis may refuse C{CONFIG}).
    """
    reply = await connection.execute_command("CONFIG", "GET", SETTING)
    # [name, value]; a server that does not know the setting answers [].
    current = str(reply[1]) if len(reply) >= 2 else ""
    wanted = expiryFlags(current)
    if wanted is not None:
        await connection.execute_command("CONFIG", "SET", SETTING, wanted)
