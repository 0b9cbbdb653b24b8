"""
docs/remember-me.md: a "remember me" checkbox.  Unticked, the session ends
after 30 idle minutes; ticked, it lasts 30 days (Sessions.updateExpiration).

    $ python examples/remember_me.py tcp:8080
"""

import sys
from datetime import timedelta

from klein import Klein
from twisted.web.iweb import IRequest

from txsessions import Config, Session, Sessions
from txsessions.demo import serve

REMEMBER = timedelta(days=30)

app = Klein()
sessions = Sessions(Config(cookie="sid", idleTimeout=timedelta(minutes=30)))


@app.route("/login", methods=["POST"])
@sessions.withSession
async def login(request: IRequest, session: Session) -> str:
    # Check the user's password here (see docs/login.md).
    await session.regenerate()
    session.set("user", "alice")
    if request.args.get(b"remember") == [b"on"]:
        # A new lifetime for this session, from now; the cookie in this
        # response is re-sent with the same Max-Age.
        await sessions.updateExpiration(request, REMEMBER)
    return "Welcome, alice\n"


@app.route("/")
@sessions.withSession
def home(request: IRequest, session: Session) -> str:
    user = session.getStringDefault("user", "stranger")
    left = session.remaining() or 0  # seconds left (None: no lifetime)
    if left > 86400:
        return f"Hello, {user} ({left / 86400:.0f} days left)\n"
    return f"Hello, {user} ({left / 60:.0f} minutes left)\n"


if __name__ == "__main__":
    serve(app.resource(), sys.argv[1:])
