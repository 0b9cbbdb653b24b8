# -*- test-case-name: tests.test_session,tests.test_manager -*-
"""
The exceptions txsessions raises, each with a message that says what to do.
"""

from __future__ import annotations


class SessionError(Exception):
    """
    The base class of every txsessions error.
    """


class NoSessionError(SessionError, LookupError):
    """
    L{txsessions.get} was asked for the session of a request that has none.
    """


class SessionDestroyedError(SessionError, RuntimeError):
    """
    A destroyed L{txsessions.Session} was asked to change.
    """


class SessionConflictError(SessionDestroyedError):
    """
    The session was regenerated or destroyed by another request while this
    one was changing it, so this request's changes could not be saved: the
    response is a 409 Conflict (or, once its headers are sent, cut short),
    never a success that lost them.
    """


class ValueNotSerializable(SessionError, TypeError):
    """
    A session key is not a C{str}, or a value is not JSON: C{str}, C{int},
    C{float} (finite), C{bool}, C{None}, or lists and dicts of them.
    """


class EntryError(SessionError):
    """
    The base class of the errors of the typed getters.

    @ivar key: the session key asked for.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key

    def __str__(self) -> str:
        return str(self.args[0])


class EntryNotFound(EntryError, KeyError):
    """
    A typed getter, or C{session[key]}, was asked for a key the session does
    not hold.
    """


class EntryTypeError(EntryError, ValueError):
    """
    A typed getter found a value it cannot convert to the type asked for.
    """


class ImmutableValueError(SessionError, TypeError):
    """
    L{Session.set} was asked to replace a value stored with
    L{Session.setImmutable}.
    """


class DatabaseError(SessionError):
    """
    A session database failed or did not answer in time.  The web layer
    answers 503 rather than serve a request whose session it could not load
    or save.
    """


class SessionLimitError(DatabaseError):
    """
    A database holding its maximum number of sessions refused a new one.
    Existing sessions go on; the client gets a 503.
    """


class CounterRangeError(DatabaseError):
    """
    An increment would leave the 64-bit integers: every database refuses
    it, and saves nothing of its change (nor the request's other changes,
    saved with it).  Not an outage: it is logged as a warning, not counted
    as a store error.  The response is a 503, as for any L{DatabaseError}, even
    when the handler catches it: what the request changed was not saved.
    """


class SessionIDError(SessionError, ValueError):
    """
    A session id generator returned an id that is not a well-formed id.
    """


class ValueNotDecodable(SessionError, ValueError):
    """
    A stored session value cannot be read back: it is not JSON, or it is
    nested deeper than L{txsessions.values.MAX_DEPTH}.  Whatever the cause,
    the record holding it is corrupt: a request that meets one starts a new
    session (and logs why) instead of failing.
    """
