"""
Iris's _examples/sessions/database/redis: sessions in Redis, shared by every
process that points at it; run two on two ports and log in through either.

    $ redis-server --port 6379 &
    $ python examples/database_redis.py tcp:8080 &
    $ python examples/database_redis.py tcp:8081

REDIS_URL chooses the server (default redis://127.0.0.1:6379/0).
"""

import os
import sys

from klein import Klein

from txsessions import Config, Sessions
from txsessions.db.redis import RedisDatabase
from txsessions.demo import serve

url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Sessions gives the database its deadline (Config.databaseTimeout): writes
# that reach Redis past it are refused.
sessions = Sessions(
    Config(cookie="sessionscookieid", cookieSecureTLS=True),
    RedisDatabase(url + ("&" if "?" in url else "?") + "prefix=myapp-"),
)
app = Klein()


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
