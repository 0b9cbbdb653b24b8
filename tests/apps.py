"""
Small Klein apps the tests serve.
"""

from __future__ import annotations

import json
from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

import txsessions
from tests.support import COOKIE, Browser, cookieValue
from txsessions import Sessions


def kvApp(sessions: Sessions) -> Klein:
    """
    Routes that read and change the session found with L{txsessions.get}:
    serve it with C{sessions.wrap(kvApp(sessions).resource())}.
    """
    app = Klein()

    @app.route("/get/<key>")
    def get(request: IRequest, key: str) -> str:
        return json.dumps(txsessions.get(request).get(key))

    @app.route("/all")
    def all(request: IRequest) -> str:
        session = txsessions.get(request)
        return json.dumps({"isNew": session.isNew, "values": session.getAll()})

    @app.route("/set/<key>/<value>")
    def set(request: IRequest, key: str, value: str) -> str:
        txsessions.get(request).set(key, value)
        return "ok"

    @app.route("/setint/<key>/<int:value>")
    def setint(request: IRequest, key: str, value: int) -> str:
        txsessions.get(request).set(key, value)
        return "ok"

    @app.route("/delete/<key>")
    def delete(request: IRequest, key: str) -> str:
        return json.dumps(txsessions.get(request).delete(key))

    @app.route("/clear")
    def clear(request: IRequest) -> str:
        txsessions.get(request).clear()
        return "ok"

    @app.route("/incr/<key>/<int(signed=True):n>")
    async def incr(request: IRequest, key: str, n: int) -> str:
        return str(await txsessions.get(request).increment(key, n))

    @app.route("/decr/<key>")
    async def decr(request: IRequest, key: str) -> str:
        return str(await txsessions.get(request).decrement(key))

    @app.route("/remember/<int:seconds>")
    async def remember(request: IRequest, seconds: int) -> str:
        await sessions.updateExpiration(request, seconds)
        return "remembered"

    @app.route("/shift")
    async def shift(request: IRequest) -> str:
        await sessions.shiftExpiration(request)
        return "shifted"

    @app.route("/setthenremember/<int:seconds>")
    async def setThenRemember(request: IRequest, seconds: int) -> str:
        txsessions.get(request).set("a", 1)
        await sessions.updateExpiration(request, seconds)
        await sessions.updateExpiration(request, seconds + 1)
        return "ok"

    @app.route("/destroy")
    async def destroy(request: IRequest) -> str:
        await sessions.destroy(request)
        return "bye"

    @app.route("/regenerate")
    async def regenerate(request: IRequest) -> str:
        await txsessions.get(request).regenerate()
        return "regenerated"

    @app.route("/reclaim")
    async def reclaim(request: IRequest) -> str:
        await txsessions.get(request).destroy()
        session = await sessions.start(request)
        session.set("fresh", True)
        return "again"

    @app.route("/stream")
    def stream(request: IRequest) -> Any:
        request.write(b"first ")
        txsessions.get(request).set("late", "yes")
        request.write(b"second")
        request.finish()
        from twisted.web.server import NOT_DONE_YET

        return NOT_DONE_YET

    @app.route("/crash")
    def crash(request: IRequest) -> str:
        txsessions.get(request).set("crashed", True)
        raise RuntimeError("handler bug")

    return app


def kvBrowser(sessions: Sessions, base: str = "http://example.com") -> Browser:
    """
    A L{Browser} on L{kvApp} wrapped in C{sessions}, sending to C{base}.
    """
    return Browser(sessions.wrap(kvApp(sessions).resource()), base)


async def servedAndWritten(
    sessions: Sessions, listen: Any, path: str
) -> tuple[str, Any, dict[str, str]]:
    """
    Serve L{kvApp} under C{sessions} on a real port (with the C{listen}
    fixture), and request C{path}, a write.

    @return: the base URL, the treq client, and the cookies that send the
        session the write started.
    """
    base, client = listen(sessions.wrap(kvApp(sessions).resource()))
    response = await client.get(base + path)
    await response.content()
    return base, client, {COOKIE: cookieValue(response, COOKIE)}
