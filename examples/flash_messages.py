"""
Iris's _examples/sessions/flash-messages: a message set on one request and
read, once, on a later one.

    $ python examples/flash_messages.py
"""

import sys

from klein import Klein

from txsessions import Config, Sessions
from txsessions.demo import serve

sessions = Sessions(Config(cookie="_session_id"))
app = Klein()


@app.route("/set")
@sessions.withSession
def setFlash(request, session):
    session.setFlash("name", "iris")
    return "Message set, is available for the next request"


@app.route("/get")
@sessions.withSession
def getFlash(request, session):
    name = session.getFlashString("name")
    if not name:
        return "Empty name!!"
    return f"Hello {name}"


@app.route("/test")
@sessions.withSession
def test(request, session):
    name = session.getFlashString("name")
    if not name:
        return "Empty name!!"
    # Read twice in the same request: still there, gone from the next one.
    return f"Ok you are coming from /set, the value of the name is {name}, " + (
        f"and again from the same context: {session.getFlashString('name')}"
    )


resource = sessions.wrap(app.resource())

if __name__ == "__main__":
    serve(resource, sys.argv[1:])
