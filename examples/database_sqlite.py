"""
Iris's _examples/sessions/database/boltdb, with SQLite: sessions that live
45 minutes and survive a restart, in ./sessions.db.

    $ python examples/database_sqlite.py
"""

import sys
from datetime import timedelta

from klein import Klein

from txsessions import Config, Sessions
from txsessions.db.sqlite import SQLiteDatabase
from txsessions.demo import serve

sessions = Sessions(
    Config(cookie="sessionscookieid", expires=timedelta(minutes=45)),
    SQLiteDatabase("./sessions.db"),
)
app = Klein()


@app.route("/")
def index(request):
    return "You should navigate to /set, /get, /delete, /clear, /destroy instead"


@app.route("/set")
@sessions.withSession
def set(request, session):
    session.set("name", "iris")
    return f"All ok session value of the 'name' is: {session.getString('name')}"


@app.route("/get")
@sessions.withSession
def get(request, session):
    return f"The 'name' on the /set was: {session.getStringDefault('name', '')}"


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
