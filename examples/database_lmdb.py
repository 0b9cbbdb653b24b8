"""
Iris's _examples/sessions/database/badger, with LMDB: sessions in ./data
that live one minute, and a listener told of each one that expires.

    $ python examples/database_lmdb.py
"""

import sys

from klein import Klein

from txsessions import Config, DestroyReason, Sessions
from txsessions.db.lmdb import LMDBDatabase
from txsessions.demo import serve

sessions = Sessions(
    Config(cookie="sessionscookieid", expires=60), LMDBDatabase("./data")
)
app = Klein()


def expired(key, reason):
    if reason is DestroyReason.expired:
        # Keys are hashes of the ids, and still only ever logged in part.
        print(f"session {key[:6]}... expired", flush=True)


sessions.onDestroy(expired)


@app.route("/set/<key>/<value>")
@sessions.withSession
def set(request, session, key, value):
    session.set(key, value)
    return f"All ok session value of the '{key}' is: {session.getString(key)}"


@app.route("/get/<key>")
@sessions.withSession
def get(request, session, key):
    return f"The '{key}' on the /set was: {session.getStringDefault(key, '')}"


@app.route("/destroy")
async def destroy(request):
    await sessions.destroy(request)
    return "destroyed"


resource = sessions.wrap(app.resource())

if __name__ == "__main__":
    serve(resource, sys.argv[1:])
