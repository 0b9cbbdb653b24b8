"""
The subscriber connection of a Redis database: destroy events and expiry
notifications, subscribed to again whenever it reconnects.

The channels are shared by every application on the server (expiries by
every one on the database), so what arrives may be no session's: another
application's key, its name a number or bytes that are not UTF-8, is left
alone, and a message that cannot be handled is logged (once for each kind of
error) and dropped, never the subscription with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._connection import keepTrying
from ._events import Events
from ._guard import speakingRedis

_log = Logger()


def _unsubscribed(failure: Any) -> None:
    """
    A subscription was cut off before Redis confirmed it: the connection was
    lost or closed, and the factory subscribes again when it reconnects.
    """
    import txredisapi

    if not failure.check(txredisapi.ConnectionError):
        _log.failure("subscribing to session events failed", failure)


class Subscription:
    """
    The subscriber connection of one Redis database: it subscribes again
    whenever it reconnects, and hands what arrives to its L{Events}.
    """

    def __init__(
        self,
        events: Events,
        db: int,
        endpointFor: Callable[[Any], IStreamClientEndpoint],
        credentials: tuple[str | None, str | None] = (None, None),
        notRedis: Callable[[Any], None] = lambda protocol: None,
    ) -> None:
        """
        @param events: who is told of what arrives.
        @param db: the Redis database number, for its expiry notifications.
        @param endpointFor: how to reach Redis, given the subscriber's
            factory (which it may configure, as Sentinel needs).
        @param credentials: the user name and password, if any.
        @param notRedis: told, with the protocol, when the server answers
            something other than Redis's protocol (see L{speakingRedis}).
        """
        import txredisapi

        self._events = events
        self._channels = channels = [events.channel, f"__keyevent@{db}__:expired"]
        self._isSubscribed = False
        self._waiting: list[Deferred[None]] = []
        self._failedKinds: set[type[BaseException]] = set()

        subscription = self

        class Protocol(speakingRedis(txredisapi.SubscriberProtocol, notRedis)):  # type: ignore[misc]
            def connectionMade(self) -> None:
                super().connectionMade()
                subscribing = self.subscribe(channels)
                subscribing.addCallbacks(lambda _: subscription.ready(), _unsubscribed)

            def connectionLost(self, why: Any) -> None:
                subscription.lost()
                super().connectionLost(why)

            def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
                subscription.received(channel, message)

        class Factory(txredisapi.SubscriberFactory):
            def stopTrying(self) -> Any:
                return keepTrying()

        factory = Factory()
        factory.protocol = Protocol
        # Key names as they are: a key named "12345" is text, not a number.
        factory.convertNumbers = False
        factory.username, factory.password = credentials
        self.factory = factory
        # A refused set-up (AUTH) fails this Deferred, which nobody else
        # waits for: the command connections report that refusal
        # (Connections), so it is not reported twice; and the subscriber,
        # like them, keeps retrying (keepTrying).
        factory.deferred.addErrback(lambda _: None)
        factory.startConnecting(endpointFor(factory))

    def subscribed(self) -> Deferred[None]:
        """
        @return: a L{Deferred} firing once the subscription is in place.
        """
        if self._isSubscribed:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def received(self, channel: Any, message: Any) -> None:
        """
        A message arrived on a channel subscribed to: hand it to the
        L{Events}.  One that is not text (another application's key, named
        by bytes that are not UTF-8) is no session's, and left alone; one
        that cannot be handled is logged and dropped.

        @param channel: the channel's name.
        @param message: the message, as txredisapi decoded it.
        """
        if not isinstance(message, str):
            return
        try:
            if channel == self._channels[0]:
                self._events.published(message)
            else:
                self._events.expired(message)
        except Exception:
            self._failed(Failure())

    def _failed(self, failure: Failure) -> None:
        """
        A message could not be handled: log it, once for each kind of error,
        naming where it was raised but quoting nothing of the message (it
        may hold a session key).
        """
        kind: type[BaseException] = failure.type or Exception
        if kind in self._failedKinds:
            return
        self._failedKinds.add(kind)
        function, path, line = failure.frames[-1][:3] if failure.frames else ("?",) * 3
        _log.error(
            "a session event could not be handled ({kind} in {function}, "
            "{path}:{line}) and was dropped; the subscription goes on (told "
            "once for each kind of error)",
            kind=kind.__qualname__,
            function=function,
            path=path,
            line=line,
        )

    def ready(self) -> None:
        """
        The subscription is in place: tell those waiting for it.
        """
        self._isSubscribed = True
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)

    def lost(self) -> None:
        """
        The connection was lost: the subscription is no longer in place.
        """
        self._isSubscribed = False

    def stop(self) -> Deferred[None]:
        """
        Disconnect, for good.
        """
        for waiter in self._waiting:
            waiter.cancel()
        return cast("Deferred[None]", self.factory.disconnect())
