# -*- test-case-name: tests.test_demo -*-
"""
The demo that C{twistd -n txsessions} serves: the login, secret and logout
example of the Iris sessions document.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

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
