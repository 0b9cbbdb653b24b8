"""
docs/testing.md: an app made by a function of its Sessions manager, so that
its tests can give it one on a fake clock (examples/test_myapp.py).

    $ python examples/myapp.py tcp:8080
"""

import sys

from klein import Klein
from twisted.web.iweb import IRequest

from txsessions import Config, Session, Sessions
from txsessions.demo import serve

CONFIG = Config(cookie="sid", idleTimeout=1800)


def makeApp(sessions: Sessions) -> Klein:
    app = Klein()

    @app.route("/login", methods=["POST"])
    @sessions.withSession
    async def login(request: IRequest, session: Session) -> str:
        values: list[bytes] = request.args.get(b"user", [b""])
        await session.regenerate()
        session.set("user", values[0].decode("utf-8", "replace"))
        return "welcome"

    @app.route("/secret")
    @sessions.withSession
    def secret(request: IRequest, session: Session) -> str:
        if "user" not in session:
            request.setResponseCode(403)
            return "Forbidden\n"
        return "The cake is a lie!\n"

    return app


if __name__ == "__main__":
    serve(makeApp(Sessions(CONFIG)).resource(), sys.argv[1:])
