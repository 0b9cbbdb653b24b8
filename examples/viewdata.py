"""
Iris's _examples/sessions/viewdata: session values rendered by a template
(twisted.web.template here).

    $ python examples/viewdata.py
"""

import sys

from klein import Klein
from twisted.web.template import Element, XMLString, renderer, tags

from txsessions import Config, Sessions
from txsessions.demo import serve

sessions = Sessions(Config(cookie="_session_id"))
app = Klein()

TEMPLATE = XMLString(
    """
    <html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
      <body>
        <p>Hello <t:transparent t:render="username" /></p>
        <ul t:render="values" />
      </body>
    </html>
    """
)


class SessionPage(Element):
    loader = TEMPLATE

    def __init__(self, session):
        super().__init__()
        self.session = session

    @renderer
    def username(self, request, tag):
        return self.session.getStringDefault("username", "guest")

    @renderer
    def values(self, request, tag):
        for key, value in sorted(self.session.getAll().items()):
            tag(tags.li(f"{key}: {value}"))
        return tag


@app.route("/")
@sessions.withSession
def index(request, session):
    session.set("username", "iris")
    session.set("visits", session.get("visits", 0) + 1)
    return SessionPage(session)


resource = sessions.wrap(app.resource())

if __name__ == "__main__":
    serve(resource, sys.argv[1:])
