import sys

from klein import Klein
from twisted.web.iweb import IRequest

from txsessions import Config, Session, Sessions
from txsessions.demo import serve

app = Klein()
sessions = Sessions(Config(cookie="sid", idleTimeout=1800))  # memory database
sessions.onDestroy(lambda key, reason: print(key[:6], reason.value, flush=True))


@app.route("/login", methods=["POST"])
@sessions.withSession  # under @app.route: the handler also gets the session
async def login(request: IRequest, session: Session) -> str:
    # Check a password here (see examples/login.py).
    user = request.args.get(b"user", [b"alice"])[0].decode("utf-8", "replace")
    await session.regenerate()  # a new id at login: a planted id cannot follow
    session.set("user", user)  # JSON values, saved before the response completes
    return f"welcome, {user}\n"


@app.route("/whoami")
@sessions.withSession
def whoami(request: IRequest, session: Session) -> str:
    return session.getStringDefault("user", "nobody") + "\n"


@app.route("/logout", methods=["POST"])
@sessions.withSession
async def logout(request: IRequest, session: Session) -> str:
    await session.destroy()  # deleted from the database, cookie expired
    return "bye\n"


if __name__ == "__main__":
    serve(app.resource(), sys.argv[1:])  # tcp:8080, or the endpoint given
