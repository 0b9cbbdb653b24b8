# -*- test-case-name: tests.test_demo -*-
"""
The demo that C{twistd -n txsessions} serves (the login, secret and logout
example of the Iris sessions document), and L{serve}, which runs the
examples.
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

from .manager import Sessions
from .session import Session

COOKIE = "mycookiesessionnameid"
"""
The demo's cookie name, as in the Iris document.
"""


def demoApp(sessions: Sessions) -> Klein:
    """
    Build the demo: C{/secret} is forbidden until C{/login}, and forbidden
    again after C{/logout}.

    @param sessions: the manager the routes use.
    @return: the Klein app.
    """
    app = Klein()

    @app.route("/secret")
    @sessions.withSession
    def secret(request: IRequest, session: Session) -> str:
        if not session.getBooleanDefault("authenticated", False):
            request.setResponseCode(403)
            return "Forbidden"
        return "The cake is a lie!"

    @app.route("/login")
    @sessions.withSession
    def login(request: IRequest, session: Session) -> str:
        # Authentication goes here.
        session.set("authenticated", True)
        return ""

    @app.route("/logout")
    @sessions.withSession
    async def logout(request: IRequest, session: Session) -> str:
        await session.destroy()
        return ""

    return app


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
