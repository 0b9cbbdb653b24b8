"""
The example of the Iris sessions document, with txsessions and Klein.

Only authenticated users may read the secret message on /secret.  To get
access, a user first visits /login, which gives a session cookie and logs
them in; /logout revokes that access.

    $ python examples/sessions.py
    $ curl -s http://localhost:8080/secret
    Forbidden
    $ curl -s -I http://localhost:8080/login
    Set-Cookie: mycookiesessionnameid=...
    $ curl -s --cookie "mycookiesessionnameid=..." http://localhost:8080/secret
    The cake is a lie!

An optional argument replaces the listening endpoint, for instance
C{tcp:0:interface=127.0.0.1}.
"""

import sys

from klein import Klein

from txsessions import Config, Sessions
from txsessions.demo import serve

cookieNameForSessionID = "mycookiesessionnameid"
sess = Sessions(Config(cookie=cookieNameForSessionID))
app = Klein()


@app.route("/secret")
@sess.withSession
def secret(request, session):
    # Check if user is authenticated
    if not session.getBooleanDefault("authenticated", False):
        request.setResponseCode(403)
        return "Forbidden\n"

    # Print secret message
    return "The cake is a lie!\n"


@app.route("/login")
@sess.withSession
def login(request, session):
    # Authentication goes here
    # ...

    # Set user as authenticated
    session.set("authenticated", True)
    return ""


@app.route("/logout")
@sess.withSession
async def logout(request, session):
    # Revoke users authentication
    session.set("authenticated", False)
    # Or to remove the variable:
    session.delete("authenticated")
    # Or destroy the whole session:
    await session.destroy()
    return ""


if __name__ == "__main__":
    serve(app.resource(), sys.argv[1:])
