"""
docs/login.md: log in with a new session id (session.regenerate()), so that
an id someone planted before the login is worth nothing after it.

    $ python examples/login.py tcp:8080
"""

import hmac
import sys

from klein import Klein
from twisted.web.iweb import IRequest

from txsessions import Config, Session, Sessions
from txsessions.demo import serve

# A stand-in for your user database.  Keep password hashes there (argon2,
# scrypt, hashlib.pbkdf2_hmac), never passwords.
USERS = {"alice": "wonderland"}

app = Klein()
sessions = Sessions(Config(cookie="sid", idleTimeout=1800))


def field(request: IRequest, name: str) -> str:
    values: list[bytes] = request.args.get(name.encode(), [b""])
    return values[0].decode("utf-8", "replace")


@app.route("/")
@sessions.withSession
def home(request: IRequest, session: Session) -> str:
    # Anonymous visitors have a session too (a basket, a language...).
    visits = session.getIntDefault("visits", 0) + 1
    session.set("visits", visits)
    user = session.getStringDefault("user", "stranger")
    return f"Hello, {user} (visit {visits})\n"


@app.route("/login", methods=["POST"])
@sessions.withSession
async def login(request: IRequest, session: Session) -> str:
    user, password = field(request, "user"), field(request, "password")
    expected = USERS.get(user, "")
    if not (expected and hmac.compare_digest(password.encode(), expected.encode())):
        request.setResponseCode(403)
        return "Wrong user or password\n"
    # The privilege changes: give the session a new id.  The values stay,
    # the old id is dead at once, and the new cookie goes with this response.
    await session.regenerate()
    session.set("user", user)
    return f"Welcome, {user}\n"


@app.route("/logout", methods=["POST"])
@sessions.withSession
async def logout(request: IRequest, session: Session) -> str:
    await session.destroy()
    return "Bye\n"


if __name__ == "__main__":
    serve(app.resource(), sys.argv[1:])
