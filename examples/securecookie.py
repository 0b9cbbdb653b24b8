"""
Iris's _examples/sessions/securecookie: the session cookie signed and
encrypted (AES-256-GCM, bound to the cookie name, with a maximum age), with
keys that rotate.

    $ python examples/securecookie.py

Keys come from the TXSESSIONS_KEYS environment variable (base64 keys,
comma-separated, oldest first), or are made fresh at start-up, which logs
everyone out at every restart.
"""

import base64
import os
import sys

from klein import Klein

from txsessions import Config, Sessions
from txsessions.codec import CookieCodec, generateKey
from txsessions.demo import serve


def keys():
    configured = os.environ.get("TXSESSIONS_KEYS")
    if not configured:
        return [generateKey()]
    return [base64.b64decode(key) for key in configured.split(",")]


sessions = Sessions(Config(cookie="_session_id", encoding=CookieCodec(keys())))
app = Klein()


@app.route("/set")
@sessions.withSession
def set(request, session):
    session.set("name", "iris")
    return f"All ok session set to: {session.getString('name')}"


@app.route("/get")
@sessions.withSession
def get(request, session):
    # isNew is False once the cookie verified and named a live session.
    name = session.getStringDefault("name", "")
    return f"The name on the /set was: {name}, isNew: {session.isNew}"


@app.route("/delete")
@sessions.withSession
def delete(request, session):
    session.delete("name")
    return "deleted"


@app.route("/clear")
@sessions.withSession
def clear(request, session):
    session.clear()
    return "cleared"


@app.route("/destroy")
async def destroy(request):
    await sessions.destroy(request)
    return "destroyed"


resource = sessions.wrap(app.resource())

if __name__ == "__main__":
    serve(resource, sys.argv[1:])
