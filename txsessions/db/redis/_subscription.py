"""
The subscriber connection of a Redis database: destroy events and expiry
notifications, subscribed to again whenever it reconnects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger

from ._connection import keepTrying
from ._events import Events

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
    ) -> None:
        """
        @param events: who is told of what arrives.
        @param db: the Redis database number, for its expiry notifications.
        @param endpointFor: how to reach Redis, given the subscriber's
            factory (which it may configure, as Sentinel needs).
        @param credentials: the user name and password, if any.
        """
        import txredisapi

        channels = [events.channel, f"__keyevent@{db}__:expired"]
        self._isSubscribed = False
        self._waiting: list[Deferred[None]] = []

        subscription = self

        class Protocol(txredisapi.SubscriberProtocol):
            def connectionMade(self) -> None:
                super().connectionMade()
                subscribing = self.subscribe(channels)
                subscribing.addCallbacks(lambda _: subscription.ready(), _unsubscribed)

            def connectionLost(self, why: Any) -> None:
                subscription.lost()
                super().connectionLost(why)

            def messageReceived(self, pattern: Any, channel: str, message: str) -> None:
                if channel == channels[0]:
                    events.published(message)
                else:
                    events.expired(message)

        class Factory(txredisapi.SubscriberFactory):
            def stopTrying(self) -> Any:
                return keepTrying()

        factory = Factory()
        factory.protocol = Protocol
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
