# -*- test-case-name: tests.test_demo -*-
"""
The demo that C{twistd -n txsessions} serves (the login, secret and logout
example of the Iris sessions document, with a home page for browsers), and
L{serve}, which runs the examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from klein import Klein
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.internet.task import react
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Site
from twisted.web.template import Element, Tag, XMLString, renderer, tags

from .config import Config
from .manager import Sessions
from .session import Session

COOKIE = "mycookiesessionnameid"
"""
The demo's cookie name, as in the Iris document.
"""

NOTICE = "notice"
"""
The flash message key of the home page's notice.
"""


def demoConfig(cookie: str = COOKIE) -> Config:
    """
    @param cookie: the cookie name.
    @return: the demo's configuration: a new session may begin in the
        request that destroyed the old one (to carry the logout notice), and
        every unsafe request must carry the session's CSRF token (its forms
        do).
    """
    return Config(cookie=cookie, allowReclaim=True, csrf=True)


_PAGE = """<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>txsessions demo</title>
    <style>
      body {{ font-family: sans-serif; max-width: 32em; margin: 1em auto;
             padding: 0 1em; line-height: 1.5; }}
      input, button {{ font-size: 1em; padding: 0.3em 0.6em; }}
      input {{ width: 100%; box-sizing: border-box; margin: 0.3em 0; }}
      #notice:empty {{ display: none; }}
      #notice {{ background: #eef; padding: 0.5em; }}
    </style>
  </head>
  <body>
    <h1>txsessions demo</h1>
    {body}
  </body>
</html>"""
"""
The pages' frame: readable on a phone-width window.
"""

MAX_NAME = 64
"""
The longest user name the login form takes.
"""


class HomePage(Element):
    """
    The home page: the notice left by the last login or logout, whether the
    visitor is logged in and as whom, and only the controls that apply: a
    login form with a user name, or the secret and a logout button, each
    form carrying the session's CSRF token (so the page that shows the login
    form starts the session its POST needs).
    """

    loader = XMLString(
        _PAGE.format(
            body="""<p id="notice" t:render="notice" />
    <p id="state" t:render="state" />
    <t:transparent t:render="controls" />"""
        )
    )

    loggedOut = XMLString(
        """<form xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1"
      method="post" action="/login">
      <input type="hidden" name="csrf_token" t:render="csrfToken" />
      <label for="user">User name</label>
      <input id="user" name="user" required="required" maxlength="64"
        autocomplete="username" />
      <button id="login">Log in</button>
    </form>"""
    )

    loggedIn = XMLString(
        """<div xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
      <p><a id="secret" href="/secret">See the secret</a></p>
      <form method="post" action="/logout">
        <input type="hidden" name="csrf_token" t:render="csrfToken" />
        <button id="logout">Log out</button>
      </form>
      <t:transparent t:render="devices" />
    </div>"""
    )

    def __init__(self, session: Session, sessions: Sessions | None = None) -> None:
        """
        @param session: the visitor's session.
        @param sessions: the manager, for the "Where you're logged in"
            section; without it, the page has none.
        """
        super().__init__()
        self._session = session
        self._sessions = sessions
        # Taken now, in the handler: a session written to while the page is
        # being rendered would be too late for its cookie.
        self._token = session.csrfToken()

    def _authenticated(self) -> bool:
        return self._session.getBooleanDefault("authenticated", False)

    @renderer
    def notice(self, request: IRequest, tag: Tag) -> Tag:
        """
        The flash message, read once.
        """
        return tag(self._session.getFlashString(NOTICE))

    @renderer
    def state(self, request: IRequest, tag: Tag) -> Tag:
        """
        Logged in (as whom) or not.
        """
        if not self._authenticated():
            return tag("You are not logged in.")
        user = self._session.getStringDefault("user", "")
        return tag(f"You are logged in as {user}." if user else "You are logged in.")

    @renderer
    def devices(self, request: IRequest, tag: Tag) -> Any:
        """
        Where the user is logged in (see L{whereLoggedIn}).
        """
        owner = self._session.owner
        if self._sessions is None or owner is None:
            return ""
        return Deferred.fromCoroutine(
            whereLoggedIn(self._sessions, request, owner, self._token)
        )

    @renderer
    def csrfToken(self, request: IRequest, tag: Tag) -> Tag:
        """
        The session's CSRF token, as the value of a form's hidden field.
        """
        return tag(value=self._token)

    @renderer
    def controls(self, request: IRequest, tag: Tag) -> Any:
        """
        The login form, or the secret and the logout button.
        """
        loader = self.loggedIn if self._authenticated() else self.loggedOut
        return loader.load()


class SecretPage(Element):
    """
    The secret, or its refusal, as a page for browsers, with a way back.
    """

    loader = XMLString(
        _PAGE.format(
            body="""<p id="message" t:render="message" />
    <p><a id="home" href="/">Back to the demo</a></p>"""
        )
    )

    def __init__(self, message: str) -> None:
        """
        @param message: what the page says.
        """
        super().__init__()
        self._message = message

    @renderer
    def message(self, request: IRequest, tag: Tag) -> Tag:
        """
        What the page says.
        """
        return tag(self._message)


def _wantsHTML(request: IRequest) -> bool:
    # A browser asks for HTML; curl (*/*) gets the Iris document's text.
    return b"text/html" in (request.getHeader(b"accept") or b"")


def _userName(request: IRequest) -> str:
    raw: bytes = (request.args or {}).get(b"user", [b""])[0]
    # Printable characters only: an owner holds no NUL, a page no controls.
    text = "".join(c for c in raw.decode("utf-8", "replace") if c.isprintable())
    return text.strip()[:MAX_NAME]


def demoApp(sessions: Sessions) -> Klein:
    """
    Build the demo: C{/secret} is forbidden until C{/login}, and forbidden
    again after C{/logout}, answering text, as in the Iris document (C{curl}),
    or a page with a way back to a browser.  C{/} is a page for browsers,
    whose form posts a user name to C{/login}, and whose button posts to
    C{/logout}; each comes back with a notice.

    @param sessions: the manager the routes use (see L{demoConfig}).
    @return: the Klein app.
    """
    app = Klein()

    @app.route("/")
    @sessions.withSession
    def home(request: IRequest, session: Session) -> HomePage:
        return HomePage(session, sessions)

    @app.route("/secret")
    @sessions.withSession
    def secret(request: IRequest, session: Session) -> str | SecretPage:
        if not session.getBooleanDefault("authenticated", False):
            request.setResponseCode(403)
            if _wantsHTML(request):
                return SecretPage("Forbidden: log in first.")
            return "Forbidden\n"
        if _wantsHTML(request):
            return SecretPage("The cake is a lie!")
        return "The cake is a lie!\n"

    @app.route("/login")
    @sessions.withSession
    async def login(request: IRequest, session: Session) -> str:
        if request.method == b"POST":
            user = _userName(request)
            if not user:
                session.setFlash(NOTICE, "Enter a user name to log in.")
                return _backHome(request)
        # Authentication goes here.  Then a new id, so that an id planted
        # before the login cannot follow the user in.
        await session.regenerate()
        session.set("authenticated", True)
        if request.method == b"POST":
            session.set("user", user)
            session.setOwner(user)  # for "Where you're logged in"
            session.setFlash(NOTICE, f"Welcome, {user}! You logged in.")
            return _backHome(request)
        return ""

    @app.route("/logout")
    @sessions.withSession
    async def logout(request: IRequest, session: Session) -> str:
        await session.destroy()
        if request.method == b"POST":
            fresh = await sessions.start(request)
            fresh.setFlash(NOTICE, "You logged out.")
            return _backHome(request)
        return ""

    addLogoutOthers(app, sessions)
    return app


# Where you're logged in (issue 19): a section of the home page, and the
# route of its button.


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


async def whereLoggedIn(
    sessions: Sessions, request: IRequest, owner: str, token: str
) -> Tag:
    """
    The home page's "Where you're logged in" section: each session of
    C{owner}, this one marked, and a button to log out the others.

    @param sessions: the manager.
    @param request: the request showing the page.
    @param owner: the logged-in user.
    @param token: the page's CSRF token, taken in its handler.
    @return: the section.
    """
    found = await sessions.sessionsOf(owner, current=request)
    items = [
        tags.li(
            tags.strong("This browser: ") if info.current else "",
            info.userAgent or "an unknown browser",
            f" (last seen {_when(info.lastSeen)})",
            class_="device current" if info.current else "device",
        )
        for info in found
    ]
    form = tags.form(method="post", action="/logout-others")(
        tags.input(type="hidden", name="csrf_token", value=token),
        tags.button("Log out the others", id="logout-others"),
    )
    return tags.section(id="devices")(
        tags.h2("Where you're logged in"), tags.ul(*items), form
    )


def addLogoutOthers(app: Klein, sessions: Sessions) -> None:
    """
    Add C{POST /logout-others}: end every other session of the logged-in
    user (L{Sessions.destroyOwner}), and come back home with a notice.

    @param app: the demo.
    @param sessions: its manager.
    """

    @app.route("/logout-others", methods=["POST"])
    @sessions.withSession
    async def logoutOthers(request: IRequest, session: Session) -> str:
        owner = session.owner
        if owner is None:
            session.setFlash(NOTICE, "Log in first.")
            return _backHome(request)
        n = await sessions.destroyOwner(owner, keep=request)
        others = "other session" if n == 1 else "other sessions"
        session.setFlash(NOTICE, f"You logged out {n} {others}.")
        return _backHome(request)


def _backHome(request: IRequest) -> str:
    request.setResponseCode(303)
    request.setHeader(b"Location", b"/")
    return ""


def serve(resource: IResource, argv: Sequence[str] = ()) -> None:
    """
    Serve C{resource} until interrupted, as the examples do: on
    C{tcp:8080}, or on the endpoint description C{argv[0]} names.  Prints
    where it listens once listening; a description that is no endpoint, or
    one it cannot listen on, is a one-line error and exit status 1.

    @param resource: the root resource.
    @param argv: the command line's arguments after the script's name.
    """
    description = argv[0] if argv else "tcp:8080"

    async def main(reactor: Any) -> None:
        port = await listen(reactor, resource, description)
        print(listeningOn(port.getHost(), description), flush=True)
        await Deferred()

    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))


async def listen(reactor: Any, resource: IResource, description: str) -> IListeningPort:
    """
    Serve C{resource} on an endpoint description.

    @param reactor: the reactor to listen with.
    @param resource: the root resource.
    @param description: an endpoint description, such as C{tcp:8080}.
    @return: the listening port.
    @raise SystemExit: with a one-line message, when C{description} is no
        endpoint description or cannot be listened on.
    """
    try:
        endpoint = endpoints.serverFromString(reactor, description)
    except (ValueError, TypeError) as e:
        raise SystemExit(
            f"{description!r} is not an endpoint description (such as tcp:8080 "
            f"or unix:/tmp/app.sock): {e}"
        ) from None
    try:
        port: IListeningPort = await endpoint.listen(Site(resource))
    except (CannotListenError, OverflowError) as e:  # in use; port 99999
        raise SystemExit(f"cannot listen on {description}: {e}") from None
    return port


def listeningOn(address: IAddress, description: str) -> str:
    """
    @param address: the address a port listens on.
    @param description: the endpoint description it was made from.
    @return: the line that says so: the URL for an address with a port
        number (TCP), or else the description (a UNIX socket).
    """
    port = getattr(address, "port", None)
    if isinstance(port, int):
        return f"Now listening on: http://localhost:{port}"
    return f"Now listening on: {description}"
