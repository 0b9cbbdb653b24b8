"""
Every example in examples/, served over HTTP in memory.
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import Any

import pytest
import pytest_twisted

from tests.support import Browser, cookieValue, setCookies

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
COOKIE = "_session_id"


def example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", os.path.join(EXAMPLES, f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def browse(name: str) -> tuple[Any, Any]:
    module = example(name)
    return module, Browser(module.resource)


class Jar:
    """
    A one-cookie jar over a Browser.
    """

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.cookies: dict[str, str] = {}

    def get(self, path: str) -> tuple[int, str]:
        response, body = self.browser.get(path, self.cookies)
        for header in setCookies(response):
            name, _, rest = header.partition("=")
            value = rest.partition(";")[0]
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response.code, body.decode()


def test_basic() -> None:
    module, browser = browse("basic")
    jar = Jar(browser)
    try:
        assert jar.get("/secret") == (403, "Forbidden\n")
        jar.get("/login")
        assert jar.get("/secret") == (200, "The cake is a lie!\n")
        jar.get("/logout")
        assert jar.cookies == {}
        assert jar.get("/secret") == (403, "Forbidden\n")
    finally:
        module.sessions.close()


def test_overview() -> None:
    module, browser = browse("overview")
    jar = Jar(browser)
    try:
        assert jar.get("/")[1] == "you should navigate to /set to set a value"
        assert jar.get("/set")[1] == "All ok session set to: iris"
        response, _ = browser.get("/set", jar.cookies)
        assert setCookies(response) == []
        assert jar.get("/set/color/blue")[1].endswith("is: blue")
        assert jar.get("/set/int/n/-5")[1].endswith("is: -5")
        assert jar.get("/get")[1] == "The 'name' on the /set was: iris"
        assert jar.get("/get/color")[1] == "The 'color' on the /set was: 'blue'"
        assert jar.get("/get/int/n") == (200, "value: -5")
        assert jar.get("/get/int/color")[0] == 404
        assert jar.get("/increment/n")[1] == "n: -4"
        assert jar.get("/")[1] == "name = 'iris'\ncolor = 'blue'\nn = -4"
        jar.get("/delete")
        assert jar.get("/get")[1] == "The 'name' on the /set was: "
        jar.get("/set/struct")
        assert jar.get("/get/struct")[1] == "BusinessModel(name='John Doe')"
        jar.get("/set/immutable")
        status, message = jar.get("/set/immutable/change")
        assert status == 409 and "immutable" in message
        assert jar.get("/get/immutable")[1] == "['Edward', 'Jane']"
        response, _ = browser.get("/update", jar.cookies)
        assert re.search(r"; Max-Age=7200; ", setCookies(response)[0])
        jar.get("/clear")
        assert jar.get("/")[1] == "you should navigate to /set to set a value"
        jar.get("/destroy")
        assert jar.cookies == {}
    finally:
        module.sessions.close()


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/get/immutable", 404),
        ("/get/struct", 404),
        ("/set/%00k/v", 400),
        ("/increment/%00k", 400),
    ],
)
def test_overviewAnswersOutOfOrderVisitsAndBadKeys(path: str, code: int) -> None:
    """
    A route visited before the one that stores its value, or given a key
    the session refuses, answers with a 4xx and why (helper-46: 500s).
    """
    module, browser = browse("overview")
    try:
        status, message = Jar(browser).get(path)
        assert status == code and message
    finally:
        module.sessions.close()


def test_overviewAnswersAStructOfTheWrongType() -> None:
    module, browser = browse("overview")
    jar = Jar(browser)
    try:
        jar.get("/set/struct/x")
        assert jar.get("/get/struct")[0] == 409
        jar.get("/set/businessEdit/x")
        assert jar.get("/get/immutable")[0] == 404
    finally:
        module.sessions.close()


@pytest.mark.parametrize("name", ["login", "devices"])
@pytest.mark.parametrize("password", ["%C3%A9", "%FF"])
def test_aLoginAnswersUnknownAndKnownUsersAlike(name: str, password: str) -> None:
    """
    A non-ASCII password, or a form field that is no UTF-8, is a wrong
    password for a known user as for an unknown one: a 403 both times, not
    a 500 that tells the known user apart (helper-46:
    C{hmac.compare_digest} of non-ASCII text raised).
    """
    module = example(name)
    browser = Browser(module.app.resource())
    try:
        codes = []
        for user in ("mallory", "alice"):
            path = f"/login?user={user}&password={password}"
            response, _ = browser.request("POST", path)
            codes.append(response.code)
        assert codes == [403, 403]
    finally:
        module.sessions.close()


def test_flashMessages() -> None:
    module, browser = browse("flash_messages")
    jar = Jar(browser)
    try:
        assert jar.get("/get")[1] == "Empty name!!"
        jar.get("/set")
        assert jar.get("/test")[1] == (
            "Ok you are coming from /set, the value of the name is iris, "
            "and again from the same context: iris"
        )
        assert jar.get("/get")[1] == "Empty name!!"
        jar.get("/set")
        assert jar.get("/get")[1] == "Hello iris"
        assert jar.get("/get")[1] == "Empty name!!"
    finally:
        module.sessions.close()


def test_viewdata() -> None:
    module, browser = browse("viewdata")
    jar = Jar(browser)
    try:
        _, body = jar.get("/")
        assert "<p>Hello iris</p>" in body
        assert "<li>visits: 1</li>" in body
        _, body = jar.get("/")
        assert "<li>visits: 2</li>" in body
        assert COOKIE in jar.cookies
    finally:
        module.sessions.close()


def test_sessionsExample() -> None:
    module = example("sessions")
    browser = Browser(module.app.resource())
    response, _ = browser.get("/login")
    sid = cookieValue(response, "mycookiesessionnameid")
    assert (
        browser.get("/secret", {"mycookiesessionnameid": sid})[1]
        == b"The cake is a lie!\n"
    )
    module.sess.close()


@pytest.mark.parametrize(
    ("name", "setPath", "getPath"),
    [
        ("database_sqlite", "/set", "/get"),
        ("database_lmdb", "/set/name/iris", "/get/name"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_databaseExamples(
    name: str, setPath: str, getPath: str, tmp_path: Any, monkeypatch: Any, listen: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    module = example(name)
    try:
        base, client = listen(module.resource)
        response = await client.get(base + setPath)
        await response.content()
        cookies = {"sessionscookieid": cookieValue(response, "sessionscookieid")}
        response = await client.get(base + getPath, cookies=cookies)
        assert (await response.text()).endswith("was: iris")
    finally:
        await module.sessions.close()
    assert (tmp_path / "sessions.db").exists() or (tmp_path / "data").is_dir()


def test_securecookie() -> None:
    module, browser = browse("securecookie")
    jar = Jar(browser)
    try:
        assert jar.get("/get")[1] == "The name on the /set was: , isNew: True"
        jar.get("/set")
        token = jar.cookies[COOKIE]
        assert len(token) > 43
        assert jar.get("/get")[1] == "The name on the /set was: iris, isNew: False"
        jar.get("/delete")
        assert jar.get("/get")[1] == "The name on the /set was: , isNew: False"
        jar.get("/set")
        jar.get("/clear")
        assert jar.get("/get")[1] == "The name on the /set was: , isNew: False"
        tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        response, body = browser.get("/get", {COOKIE: tampered})
        assert body.endswith(b"isNew: True")
    finally:
        module.sessions.close()


@pytest_twisted.ensureDeferred
async def test_databaseRedisSharedByTwoServers(
    redisServer: Any, monkeypatch: Any, listen: Any
) -> None:
    monkeypatch.setenv("REDIS_URL", redisServer.url)
    first, second = example("database_redis"), example("database_redis")
    try:
        one, client = listen(first.resource)
        two, _ = listen(second.resource)
        response = await client.get(one + "/set/name/iris")
        await response.content()
        cookies = {"sessionscookieid": cookieValue(response, "sessionscookieid")}
        response = await client.get(two + "/get/name", cookies=cookies)
        assert (await response.text()).endswith("was: iris")
    finally:
        await first.sessions.close()
        await second.sessions.close()


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(["--class", "twistdweb.root"], id="class"),
        pytest.param(
            ["--resource-script", os.path.join(EXAMPLES, "app.rpy")],
            id="resource-script",
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_twistdWebServesTxsessions(how: list[str], tmp_path: Any) -> None:
    from tests.processes import Server, twistd
    from tests.support import plainClient

    argv = [
        twistd(),
        "-n",
        "--pidfile=",
        "web",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]
    server = Server([*argv, *how], str(tmp_path), pythonPath=EXAMPLES)
    try:
        base = await server.start()
        client = plainClient()
        response = await client.get(base + "/")
        assert await response.text() == "visit 1\n"
        sid = cookieValue(response, "sid")
        for visit in (2, 3):
            response = await client.get(base + "/", cookies={"sid": sid})
            assert await response.text() == f"visit {visit}\n"
    finally:
        await server.stop()
