"""
txsessions under Twisted's own C{twistd web}, two ways (README: "Serving with
twistd web"):

    $ export PYTHONPATH=examples
    $ twistd -n web --listen tcp:8080 --class twistdweb.root
    $ twistd -n web --listen tcp:8080 --resource-script examples/app.rpy

C{--class} calls what it names with no arguments, so it names L{root}, a
factory, not the wrapped resource itself; C{examples/app.rpy} calls it too.
"""

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

import txsessions
from txsessions import Config, Sessions

sessions = Sessions(Config(cookie="sid"))
app = Klein()


@app.route("/")
def visits(request: IRequest) -> str:
    session = txsessions.get(request)
    count = session.getIntDefault("visits", 0) + 1
    session.set("visits", count)
    return f"visit {count}\n"


def root() -> IResource:
    """
    The app wrapped in sessions, made by a call with no arguments, as
    C{twistd web --class} wants.
    """
    return sessions.wrap(app.resource())
