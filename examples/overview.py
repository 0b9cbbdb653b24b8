"""
Iris's _examples/sessions/overview: every common session operation, one
route each, with sessions that live two hours.

    $ python examples/overview.py
    $ curl -c jar -b jar localhost:8080/set/name/iris
"""

import sys
from datetime import timedelta

import attrs
from klein import Klein

from txsessions import Config, ImmutableValueError, Sessions, ValueNotSerializable
from txsessions.demo import serve
from txsessions.errors import EntryError, EntryNotFound

sessions = Sessions(Config(cookie="_session_id", expires=timedelta(hours=2)))
app = Klein()


@attrs.frozen
class BusinessModel:
    name: str


@app.handle_errors(EntryError)
def missing(request, failure):
    # No such key, or not of the type asked for: /get/struct before /set/struct.
    request.setResponseCode(404 if failure.check(EntryNotFound) else 409)
    return str(failure.value)


@app.handle_errors(ValueNotSerializable)
def refused(request, failure):
    # A key the session refuses (one starting with NUL), or a value.
    request.setResponseCode(400)
    return str(failure.value)


@app.route("/")
@sessions.withSession
def index(request, session):
    if session.len() == 0:
        return "you should navigate to /set to set a value"
    lines = []
    session.visit(lambda key, value: lines.append(f"{key} = {value!r}"))
    return "\n".join(lines)


@app.route("/set")
@sessions.withSession
def setName(request, session):
    session.set("name", "iris")
    return f"All ok session set to: {session.getString('name')}"


@app.route("/set/<key>/<value>")
@sessions.withSession
def setKey(request, session, key, value):
    session.set(key, value)
    return f"All ok session value of the '{key}' is: {session.getString(key)}"


@app.route("/set/int/<key>/<int(signed=True):value>")
@sessions.withSession
def setInt(request, session, key, value):
    session.set(key, value)
    return f"All ok session value of the '{key}' is: {session.getInt(key)}"


@app.route("/get")
@sessions.withSession
def getName(request, session):
    return f"The 'name' on the /set was: {session.getStringDefault('name', '')}"


@app.route("/get/<key>")
@sessions.withSession
def getKey(request, session, key):
    return f"The '{key}' on the /set was: {session.get(key)!r}"


@app.route("/get/int/<key>")
@sessions.withSession
def getInt(request, session, key):
    try:
        return f"value: {session.getInt(key)}"
    except EntryError as e:
        request.setResponseCode(404)
        return str(e)


@app.route("/increment/<key>")
@sessions.withSession
async def increment(request, session, key):
    return f"{key}: {await session.increment(key, 1)}"


@app.route("/delete")
@sessions.withSession
def deleteName(request, session):
    session.delete("name")
    return "deleted"


@app.route("/clear")
@sessions.withSession
def clear(request, session):
    session.clear()
    return "cleared"


@app.route("/update")
async def update(request):
    # Restart the lifetime: two hours from now, cookie re-sent.
    await sessions.shiftExpiration(request)
    return "updated"


@app.route("/destroy")
async def destroy(request):
    await sessions.destroy(request)
    return "destroyed"


@app.route("/set/struct")
@sessions.withSession
def setStruct(request, session):
    session.set("struct", attrs.asdict(BusinessModel(name="John Doe")))
    return "stored"


@app.route("/get/struct")
@sessions.withSession
def getStruct(request, session):
    return repr(session.decode("struct", BusinessModel))


@app.route("/set/immutable")
@sessions.withSession
def setImmutable(request, session):
    session.setImmutable("businessEdit", ["Edward", "Jane"])
    return "immutable stored"


@app.route("/set/immutable/change")
@sessions.withSession
def changeImmutable(request, session):
    try:
        session.set("businessEdit", ["hacked"])
    except ImmutableValueError as e:
        request.setResponseCode(409)
        return str(e)
    return "changed"


@app.route("/get/immutable")
@sessions.withSession
def getImmutable(request, session):
    names = session.get("businessEdit")
    if not isinstance(names, list):
        request.setResponseCode(404)
        return "no list under businessEdit: visit /set/immutable first"
    names.append("not stored")
    return repr(session.get("businessEdit"))


resource = sessions.wrap(app.resource())

if __name__ == "__main__":
    serve(resource, sys.argv[1:])
