"""
Iris's _examples/sessions/basic: the login, secret and logout routes, with
the session started by a wrapper and read with txsessions.get.

    $ python examples/basic.py
"""

import sys

from klein import Klein

import txsessions
from txsessions import Config, Sessions
from txsessions.demo import serve

sessions = Sessions(Config(cookie="_session_id", allowReclaim=True))
app = Klein()


@app.route("/secret")
def secret(request):
    session = txsessions.get(request)
    # Check if user is authenticated.
    if not session.getBooleanDefault("authenticated", False):
        request.setResponseCode(403)
        return "Forbidden\n"
    # Print secret message.
    return "The cake is a lie!\n"


@app.route("/login")
def login(request):
    session = txsessions.get(request)
    # Authentication goes here.
    # ...
    # Set user as authenticated.
    session.set("authenticated", True)
    return ""


@app.route("/logout")
async def logout(request):
    # Destroy the whole session; with allowReclaim a later start in this
    # request would begin a new one.
    await sessions.destroy(request)
    return ""


resource = sessions.wrap(app.resource())

if __name__ == "__main__":
    serve(resource, sys.argv[1:])
