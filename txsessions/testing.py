# -*- test-case-name: tests.test_testing -*-
"""
A kit for testing your own app's sessions, with no sockets and no sleeps
(as C{treq.testing} is for HTTP clients).

L{SessionsKit} makes a L{Sessions} manager whose sessions live in a
L{MemoryDatabase} on a L{Clock}, and L{StubBrowser}s that send requests to
your resource in memory and keep cookies between them as a browser does:
C{Secure}, C{Path}, C{Max-Age} (on the kit's clock) and deletion included.
Build your app from C{kit.sessions}, so that it is a function of its
manager::

    from txsessions import Config
    from txsessions.testing import SessionsKit

    from myapp import makeApp  # makeApp(sessions) -> Klein

    def test_loginLastsAMinute():
        kit = SessionsKit(Config(cookie="sid", expires=60))
        browser = kit.browser(makeApp(kit.sessions))
        assert browser.get("/secret").code == 403
        browser.post("/login", data={"user": "alice"})
        assert browser.get("/secret").text == "The cake is a lie!"
        kit.advance(61)
        assert browser.get("/secret").code == 403

Requests go to C{https://example.com} unless a browser is given another
base URL; C{https} requests count as TLS, so cookies are C{Secure} as in
production.  (Over C{http://} a cookie is not C{Secure}, and a manager
whose cookie must be, such as one with C{forceSecureCookie} or a
C{__Host-} name, sends none.)

Needs treq (C{pip install treq}).
"""

from __future__ import annotations

import json
import math
import re
from http.cookiejar import Cookie, DefaultCookiePolicy
from typing import Any, Protocol, TypeVar
from urllib.parse import urljoin

import attrs
from treq.client import HTTPClient
from treq.cookies import CookieCollision, IndexableCookieJar
from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from twisted.web.resource import IResource
from zope.interface import implementer

from .codec import CookieCodec
from .config import Config
from .db.memory import MemoryDatabase
from .manager import Sessions

__all__ = ["Response", "SessionsKit", "StubBrowser"]

T = TypeVar("T")

BASE = "https://example.com"
"""
Where a L{StubBrowser} sends a request whose URL is a path.
"""

_MAX_HOPS = 20

_REDIRECTS = (301, 302, 303, 307, 308)


def _redirected(
    method: str, code: int, kwargs: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """
    The request a browser sends after a redirect: a 307 or 308 sends the
    same again, a 303 (and a 301 or 302 answering a C{POST}) a C{GET}
    without the body.

    @return: its method and treq's arguments.
    """
    if code in (307, 308) or method == "HEAD" or (code != 303 and method != "POST"):
        return method, kwargs
    return "GET", {k: v for k, v in kwargs.items() if k not in ("data", "json")}


class _HasResource(Protocol):
    def resource(self) -> IResource: ...


class SessionsKit:
    """
    A L{Sessions} manager on a memory database and a L{Clock}, and the
    browsers that talk to an app built on it.

    @ivar clock: the clock the manager and the database run on; move it
        with L{advance}.
    @ivar database: the L{MemoryDatabase} holding the sessions.
    @ivar sessions: the manager: build the app under test with it.
    """

    def __init__(
        self,
        config: Config | None = None,
        clock: Clock | None = None,
        maxSessions: int = 0,
    ) -> None:
        """
        @param config: the manager's settings; L{Config()} when C{None}.
        @param clock: the clock to run on; a new L{Clock}, at 0 (1 January
            1970), when C{None}.
        @param maxSessions: the most sessions the database holds (0: no
            limit).
        """
        self.clock = clock if clock is not None else Clock()
        if config is not None and isinstance(config.encoding, CookieCodec):
            # Sealed cookies expire by the kit's clock, as the rest does.
            encoding = config.encoding.onClock(self.clock.seconds)
            config = attrs.evolve(config, encoding=encoding)
        self.database = MemoryDatabase(self.clock, maxSessions)
        self.sessions = Sessions(config, self.database, self.clock)
        self._browsers: list[StubBrowser] = []

    def browser(self, app: IResource | _HasResource, base: str = BASE) -> StubBrowser:
        """
        Make a browser with an empty cookie jar.

        @param app: the resource to request, or a Klein app (its
            C{resource()} is used).  Routes that read the session with
            L{txsessions.get} need the resource wrapped:
            C{kit.sessions.wrap(app.resource())}; C{@sessions.withSession}
            routes do not.
        @param base: where requests whose URL is a path go; an C{https} URL
            makes them count as TLS.
        @return: the browser.
        """
        resource = app if IResource.providedBy(app) else app.resource()
        browser = StubBrowser(self, resource, base)
        self._browsers.append(browser)
        return browser

    def advance(self, seconds: float) -> None:
        """
        Move the clock forward: sessions and cookies whose time is up
        expire, and responses waiting on the clock go out.

        @param seconds: how far.
        """
        self.clock.advance(seconds)
        self.flush()

    def flush(self) -> None:
        """
        Deliver everything the app has written so far to every browser, and
        forget the cookies whose time is up.
        """
        for browser in self._browsers:
            browser.flush()

    def result(self, d: Deferred[T]) -> T:
        """
        The result of a L{Deferred} that has fired, once everything written
        so far is delivered (like C{successResultOf} of Twisted's
        L{SynchronousTestCase<twisted.trial.unittest.SynchronousTestCase>}).

        @param d: a L{Deferred}, such as L{StubBrowser.send} returns.
        @return: its result.
        @raise AssertionError: when it has not fired: the app is waiting for
            something, such as the clock (see L{advance}).
        @raise Exception: what it failed with.
        """
        self.flush()
        results: list[T | Failure] = []

        def observe(result: T | Failure) -> T | Failure:
            results.append(result)
            return result

        d.addBoth(observe)
        if not results:
            raise AssertionError(
                f"{d!r} has not fired: the app is waiting, perhaps for "
                "kit.advance(), or for something that never happens"
            )
        result = results[0]
        if isinstance(result, Failure):
            d.addErrback(lambda failure: None)  # handled: raised here
            result.raiseException()
        return result


@attrs.frozen
class Response:
    """
    A response that has arrived in full.

    @ivar code: the status code.
    @ivar headers: the response headers.
    @ivar body: the body.
    @ivar url: the URL that answered (after redirects).
    """

    code: int
    headers: Headers
    body: bytes
    url: str

    @property
    def text(self) -> str:
        """
        The body, decoded as UTF-8.
        """
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """
        @return: the body, parsed as JSON.
        """
        return json.loads(self.body)

    @property
    def setCookies(self) -> list[str]:
        """
        The C{Set-Cookie} header values, to check a cookie's attributes.
        """
        return [
            value.decode("latin-1")
            for value in self.headers.getRawHeaders(b"set-cookie", [])
        ]


class StubBrowser:
    """
    Sends requests to a resource in memory (through treq and its
    C{RequestTraversalAgent}) and keeps the cookies the responses set, as a
    browser does.  Its request methods take treq's keyword arguments
    (C{params}, C{headers}, C{data}, C{json}, C{cookies},
    C{allow_redirects}, ...) except C{files}; redirects are followed as a
    browser follows them (a C{POST} answered 301, 302 or 303 becomes a
    C{GET}; a 307 or 308 sends the same request again) unless
    C{allow_redirects=False}.  As with treq's own client,
    C{cookies} go into the jar: later requests send them too.

    @ivar cookies: the cookie jar, on the kit's clock; C{cookies[name]}
        gives a cookie's value.
    @ivar base: where requests whose URL is a path go.
    """

    def __init__(self, kit: SessionsKit, resource: IResource, base: str) -> None:
        """
        Use L{SessionsKit.browser}.
        """
        self._kit = kit
        self._agent = RequestTraversalAgent(resource)
        self.cookies: IndexableCookieJar = _ClockCookieJar(kit.clock)
        self._client = HTTPClient(
            self._agent, cookiejar=self.cookies, data_to_body_producer=_Body
        )
        self._pending: set[Deferred[Any]] = set()
        self.base = base.rstrip("/")

    def send(self, method: str, url: str, **kwargs: Any) -> Deferred[Response]:
        """
        Start a request, for an app that answers later: after
        L{SessionsKit.advance}, say.  Read the response with
        L{SessionsKit.result}.

        @param method: the HTTP method.
        @param url: a path (sent to C{base}) or an absolute URL.
        @param kwargs: treq's arguments.
        @return: a L{Deferred} firing with the L{Response}.
        """
        if "files" in kwargs:
            raise TypeError("StubBrowser cannot send files")
        # treq schedules its timeout= on this, and need not import the reactor.
        kwargs.setdefault("reactor", self._kit.clock)
        follow = kwargs.pop("allow_redirects", True)
        kwargs["allow_redirects"] = False  # followed below, as a browser does
        if hasattr(kwargs.get("data"), "read"):
            kwargs["data"] = kwargs["data"].read()  # to send again on a 307
        if url.startswith("/"):
            url = self.base + url
        treqResponse = self._client.request(method, url, **kwargs)

        async def read() -> Response:
            response = await treqResponse
            hops = 0
            while follow and response.code in _REDIRECTS and hops < _MAX_HOPS:
                location = response.headers.getRawHeaders(b"location")
                if not location:
                    break
                await response.content()
                hops += 1
                again = _redirected(method, response.code, kwargs)
                nextURL = urljoin(
                    response.request.absoluteURI.decode("ascii"),
                    location[0].decode("ascii", "replace"),
                )
                response = await self._client.request(again[0], nextURL, **again[1])
            body = await response.content()
            return Response(
                code=response.code,
                headers=response.headers,
                body=body,
                url=response.request.absoluteURI.decode("ascii"),
            )

        d = Deferred.fromCoroutine(read())
        self._pending.add(d)

        def done(result: object) -> object:
            self._pending.discard(d)
            return result

        d.addBoth(done)
        self.flush()
        return d

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        """
        Send a request and wait for the whole response.

        @param method: the HTTP method.
        @param url: a path (sent to C{base}) or an absolute URL.
        @param kwargs: treq's arguments.
        @return: the response.
        @raise AssertionError: when the app has not finished answering (use
            L{send} for an app that waits for the clock).
        """
        return self._kit.result(self.send(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> Response:
        """
        C{GET}; see L{request}.
        """
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        """
        C{POST}; see L{request}.
        """
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        """
        C{PUT}; see L{request}.
        """
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        """
        C{PATCH}; see L{request}.
        """
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        """
        C{DELETE}; see L{request}.
        """
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Response:
        """
        C{HEAD}; see L{request}.
        """
        return self.request("HEAD", url, **kwargs)

    def cookie(self, name: str) -> str | None:
        """
        @param name: a cookie name.
        @return: the value of the cookie of that name the browser holds, or
            C{None} when it holds none.
        @raise AssertionError: when it holds several (for different paths or
            domains).
        """
        self.cookies.clear_expired_cookies()
        try:
            return self.cookies[name]
        except KeyError:
            return None
        except CookieCollision:
            raise AssertionError(f"the browser holds several {name} cookies") from None

    @property
    def sessionID(self) -> str | None:
        """
        The session id the browser's session cookie carries (decoded, when
        the manager's L{Config} has an C{encoding}), or C{None} when it has
        no session cookie, or one that carries no id.
        """
        config = self._kit.sessions.config
        value = self.cookie(config.cookie)
        if value is None or config.encoding is None:
            return value
        try:
            return config.encoding.decode(config.cookie, value)
        except Exception:
            return None

    def flush(self) -> None:
        """
        Deliver what the app has written so far, following redirects.
        """
        for _ in range(_MAX_HOPS):
            self._agent.flush()
            if not self._pending:
                break
        self.cookies.clear_expired_cookies()


class _OnClock:
    """
    Tells the time of a L{Clock} as the C{_now} that C{CookieJar} and
    C{DefaultCookiePolicy} read, and ignores the wall-clock time
    C{CookieJar} sets there.
    """

    _clock: Clock

    @property
    def _now(self) -> float:
        # Not rounded down: a cookie lasts its whole Max-Age, as the session
        # it names does.
        return self._clock.seconds()

    @_now.setter
    def _now(self, value: float) -> None:
        pass


class _ClockPolicy(_OnClock, DefaultCookiePolicy):
    """
    A browser's rules, on a L{Clock}: host-only cookies stay with their
    host, and a C{Secure} cookie (which the C{__Secure-} and C{__Host-}
    prefixes require) is accepted only over C{https}.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(strict_ns_domain=DefaultCookiePolicy.DomainStrictNonDomain)
        self._clock = clock

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        secure = request.type in ("https", "wss")
        # Browsers read the prefixes in any case (RFC 6265bis 5.7).
        name = cookie.name.lower()
        if name.startswith(("__secure-", "__host-")) and not cookie.secure:
            return False
        if name.startswith("__host-") and (
            cookie.domain_specified or cookie.path != "/"
        ):
            return False
        if cookie.secure and not secure:
            return False
        return bool(super().set_ok(cookie, request))


class _ClockCookieJar(_OnClock, IndexableCookieJar):
    """
    A cookie jar whose time is a L{Clock}'s, so that C{Max-Age} and
    C{Expires} count in the clock's seconds.
    """

    def __init__(self, clock: Clock) -> None:
        super().__init__(_ClockPolicy(clock))
        self._clock = clock

    def clear_expired_cookies(self) -> None:
        """
        Forget the cookies whose time is up on the clock.
        """
        now = self._now
        for cookie in list(self):
            if cookie.is_expired(now):  # type: ignore[arg-type]
                self.clear(cookie.domain, cookie.path, cookie.name)

    def _normalized_cookie_tuples(self, attrs_set: Any) -> Any:
        """
        C{CookieJar}'s, with C{Max-Age} winning over C{Expires} wherever it
        comes in the header, and a C{Max-Age} that is no number ignored, as
        browsers do (RFC 6265 5.2.2, 5.3): C{CookieJar} lets the first of
        the two win, and drops a cookie with a bad C{Max-Age}.  Its expiry
        is rounded up to the second (C{CookieJar} keeps whole seconds), so
        that the cookie lasts as long as the session it names.
        """
        ordered = []
        for name, *attributes in attrs_set:
            ages = [
                (k, v)
                for k, v in attributes
                if k == "max-age" and re.fullmatch(r"-?[0-9]+", v or "")
            ]
            others = [(k, v) for k, v in attributes if k != "max-age"]
            ordered.append([name, *ages, *others])
        cookies = super()._normalized_cookie_tuples(ordered)  # type: ignore[misc]
        for _, _, standard, _ in cookies:
            expires = standard.get("expires")
            if expires is not None and expires > self._now:  # not to delete now
                standard["expires"] = math.ceil(expires)
        return cookies


@implementer(IBodyProducer)
class _Body:
    """
    A request body produced at once, so that no cooperator (and no reactor)
    is involved.
    """

    def __init__(self, body: bytes | str) -> None:
        """
        @param body: the body (a file's is read by L{StubBrowser.send}).
        """
        self._body = body.encode("utf-8") if isinstance(body, str) else body
        self.length = len(self._body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass
