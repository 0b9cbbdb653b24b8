# -*- test-case-name: tests.test_demo -*-
"""
The demo that C{twistd -n txsessions} serves (the login, secret and logout
example of the Iris sessions document, with a home page for browsers), and
L{serve}, which runs the examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from klein import Klein
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Site
from twisted.web.template import Element, Tag, XMLString, renderer

from .config import Config
from .manager import Sessions
from .session import Session

COOKIE = "mycookiesessionnameid"
"""
The demo's cookie name, as in the Iris document.
"""

NOTICE = "notice"
"""
The flash message key of the home page's notice.
"""


def demoConfig(cookie: str = COOKIE) -> Config:
    """
    @param cookie: the cookie name.
    @return: the demo's configuration: a new session may begin in the
        request that destroyed the old one (to carry the logout notice).
    """
    return Config(cookie=cookie, allowReclaim=True)


class HomePage(Element):
    """
    The home page: whether the visitor is logged in, the notice left by the
    last login or logout, and the buttons to change that.
    """

    loader = XMLString(
        """<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
  <head><title>txsessions demo</title></head>
  <body>
    <h1>txsessions demo</h1>
    <p id="notice" t:render="notice" />
    <p id="state" t:render="state" />
    <form method="post" action="/login"><button id="login">Log in</button></form>
    <form method="post" action="/logout"><button id="logout">Log out</button></form>
    <p><a id="secret" href="/secret">The secret</a></p>
  </body>
</html>"""
    )

    def __init__(self, session: Session) -> None:
        """
        @param session: the visitor's session.
        """
        super().__init__()
        self._session = session

    @renderer
    def notice(self, request: IRequest, tag: Tag) -> Tag:
        """
        The flash message, read once.
        """
        return tag(self._session.getFlashString(NOTICE))

    @renderer
    def state(self, request: IRequest, tag: Tag) -> Tag:
        """
        Logged in or not.
        """
        if self._session.getBooleanDefault("authenticated", False):
            return tag("You are logged in.")
        return tag("You are not logged in.")


def demoApp(sessions: Sessions) -> Klein:
    """
    Build the demo: C{/secret} is forbidden until C{/login}, and forbidden
    again after C{/logout}.  C{/} is a page for browsers, whose buttons
    post to C{/login} and C{/logout} and come back with a notice.

    @param sessions: the manager the routes use (see L{demoConfig}).
    @return: the Klein app.
    """
    app = Klein()

    @app.route("/")
    @sessions.withSession
    def home(request: IRequest, session: Session) -> HomePage:
        return HomePage(session)

    @app.route("/secret")
    @sessions.withSession
    def secret(request: IRequest, session: Session) -> str:
        if not session.getBooleanDefault("authenticated", False):
            request.setResponseCode(403)
            return "Forbidden"
        return "The cake is a lie!"

    @app.route("/login")
    @sessions.withSession
    async def login(request: IRequest, session: Session) -> str:
        # Authentication goes here.  Then a new id, so that an id planted
        # before the login cannot follow the user in.
        await session.regenerate()
        session.set("authenticated", True)
        if request.method == b"POST":
            session.setFlash(NOTICE, "Welcome! You logged in.")
            return _backHome(request)
        return ""

    @app.route("/logout")
    @sessions.withSession
    async def logout(request: IRequest, session: Session) -> str:
        await session.destroy()
        if request.method == b"POST":
            fresh = await sessions.start(request)
            fresh.setFlash(NOTICE, "You logged out.")
            return _backHome(request)
        return ""

    return app


def _backHome(request: IRequest) -> str:
    request.setResponseCode(303)
    request.setHeader(b"Location", b"/")
    return ""


def serve(resource: IResource, argv: Sequence[str] = ()) -> None:
    """
    Serve C{resource} until interrupted, as the examples do: on
    C{tcp:8080}, or on the endpoint description C{argv[0]} names.  Prints
    the URL once listening.

    @param resource: the root resource.
    @param argv: the command line's arguments after the script's name.
    """
    description = argv[0] if argv else "tcp:8080"

    async def main(reactor: Any) -> None:
        endpoint = endpoints.serverFromString(reactor, description)
        port = await endpoint.listen(Site(resource))
        print(f"Now listening on: http://localhost:{port.getHost().port}", flush=True)
        await Deferred()

    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
