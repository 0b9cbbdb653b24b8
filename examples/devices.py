"""
docs/owners.md: sessions that know their user: a list of where the user is
logged in (Sessions.sessionsOf), and "log out the others"
(Sessions.destroyOwner).

    $ python examples/devices.py tcp:8080
"""

import hmac
import sys
from datetime import datetime, timezone

from klein import Klein
from twisted.web.iweb import IRequest

from txsessions import Config, Session, Sessions
from txsessions.demo import serve

# A stand-in for your user database.  Keep password hashes there, never
# passwords.
USERS = {"alice": "wonderland"}

app = Klein()
sessions = Sessions(Config(cookie="sid", idleTimeout=1800))


def field(request: IRequest, name: str) -> str:
    values: list[bytes] = request.args.get(name.encode(), [b""])
    return values[0].decode("utf-8", "replace")


def when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%H:%M")


@app.route("/")
@sessions.withSession
def home(request: IRequest, session: Session) -> str:
    return f"Hello, {session.owner or 'stranger'}\n"


@app.route("/login", methods=["POST"])
@sessions.withSession
async def login(request: IRequest, session: Session) -> str:
    user, password = field(request, "user"), field(request, "password")
    expected = USERS.get(user, "")
    if not (expected and hmac.compare_digest(password.encode(), expected.encode())):
        request.setResponseCode(403)
        return "Wrong user or password\n"
    await session.regenerate()
    session.setOwner(user)  # this session is one of the user's
    return f"Welcome, {user}\n"


@app.route("/sessions")
@sessions.withSession
async def where(request: IRequest, session: Session) -> str:
    if session.owner is None:
        request.setResponseCode(403)
        return "Log in first\n"
    lines = []
    for info in await sessions.sessionsOf(session.owner, current=request):
        mark = "*" if info.current else " "
        lines.append(
            f"{mark} {info.key[:8]}  {info.userAgent}  "
            f"last seen {when(info.lastSeen)}  expires {when(info.lifetime.expiresAt)}"
        )
    return "\n".join(lines) + "\n"


@app.route("/logout-others", methods=["POST"])
@sessions.withSession
async def logoutOthers(request: IRequest, session: Session) -> str:
    if session.owner is None:
        request.setResponseCode(403)
        return "Log in first\n"
    ended = await sessions.destroyOwner(session.owner, keep=request)
    return f"Logged out {ended} other session{'' if ended == 1 else 's'}\n"


if __name__ == "__main__":
    serve(app.resource(), sys.argv[1:])
