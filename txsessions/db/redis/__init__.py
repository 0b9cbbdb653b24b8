# -*- test-case-name: tests.db.test_conformance,tests.db.test_redis -*-
r"""
Sessions in Redis, over txredisapi: shared by every process and machine
that points at the same server.

Layout: one hash per session at C{prefix + key}, each field a session field
with its JSON text, plus C{"\\0\\0c"} (created) and C{"\\0\\0e"} (expires, in
the manager's clock).  The hash's TTL is set in the same round trip as every
write: the session's lifetime, or C{defaultTTL} for sessions without one
(refreshed on each write), so that no key lives forever.

One round trip loads a session (a Lua script answering with one JSON
string); one saves it (a Lua script that never re-creates a session
deleted meanwhile, and increments with C{HINCRBY}).  A write that reaches
Redis more than C{staleAfter} seconds after it was sent (queued while the
connection was down) is refused, so it never lands long after its request
failed.

Destroy events reach every process of the database: destroys publish on
the C{prefix + "events"} channel (C{prefix + "events@N"} for database
number N other than 0: pub/sub ignores database numbers), and expiries come
from Redis keyspace notifications (C{notify-keyspace-events Ex}, which this
module adds to the server's flags when they lack it and Redis allows).
Each process's listeners hear of each event once: of its own destroys
through whichever comes first, the script's answer or the event's echo
(each message names the database that published it), so that a process
whose subscription is not in place yet still hears of them; and of the
rest through its subscription.  A message is C{reason@origin key}.
"""

from ._database import RedisDatabase
from ._url import RedisURL

__all__ = ["RedisDatabase", "RedisURL"]
