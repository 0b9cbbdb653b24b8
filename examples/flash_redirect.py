"""
docs/flash-messages.md: a form posts, the server saves and redirects, and
the page it redirects to shows "Saved" once (post/redirect/get).

    $ python examples/flash_redirect.py tcp:8080
"""

import sys

from klein import Klein
from twisted.web.iweb import IRequest

from txsessions import Config, Session, Sessions
from txsessions.demo import serve

app = Klein()
sessions = Sessions(Config(cookie="sid", idleTimeout=1800))


@app.route("/")
@sessions.withSession
def home(request: IRequest, session: Session) -> str:
    # getFlashStringDefault reads the message and removes it when this request
    # saves: the next request no longer sees it.
    notice = session.getFlashStringDefault("notice", "")
    name = session.getStringDefault("name", "stranger")
    return (notice + "\n" if notice else "") + f"Hello, {name}.\n"


@app.route("/profile", methods=["POST"])
@sessions.withSession
def saveProfile(request: IRequest, session: Session) -> str:
    values: list[bytes] = request.args.get(b"name", [b""])
    name = values[0].decode("utf-8", "replace").strip() or "stranger"
    session.set("name", name)
    session.setFlash("notice", f"Saved: your name is now {name}.")
    request.setResponseCode(303)  # See Other: the browser GETs /
    request.setHeader(b"Location", b"/")
    return ""


if __name__ == "__main__":
    serve(app.resource(), sys.argv[1:])
