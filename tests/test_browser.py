"""
The demo in a real browser: a Chromium (on PATH, or playwright's own),
headless, driven by playwright, against `twistd -n txsessions` on a free
port.  Its forms work (they carry the session's CSRF token), and a page on
another origin posting to it is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.processes import twistd

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")
"""
The names a Chromium goes by on PATH, looked for in this order before
playwright's own browser (C{playwright install chromium}).
"""
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    """
    The Chromium to drive: the first of L{CHROMIUMS} on PATH, else the one
    C{playwright install chromium} downloaded, else C{None}.
    """
    for name in CHROMIUMS:
        found = shutil.which(name)
        if found is not None:
            return found
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        path = p.chromium.executable_path
    return path if path and os.access(path, os.X_OK) else None


def _missing() -> tuple[str, str | None]:
    """
    The Chromium to use, or why there is none.

    @return: C{(reason, None)} or C{("", path)}.
    """
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]'", None
    with ThreadPoolExecutor(1) as pool:
        path = pool.submit(chromium).result(timeout=60)
    if path is None:
        return (
            "no Chromium found (chromium, chromium-browser or google-chrome on "
            "PATH, or playwright's): apt-get install chromium, or "
            "playwright install chromium",
            None,
        )
    return "", path


@pytest.fixture
def browserPath() -> str:
    missing, path = _missing()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; .ci/run installs it")
        pytest.skip(missing)
    return path


@pytest.fixture
def demo(browserPath: str, tmp_path: Any) -> Iterator[str]:
    process = subprocess.Popen(
        [
            twistd(),
            "-n",
            "--pidfile=",
            "txsessions",
            "--listen",
            "tcp:0:interface=127.0.0.1",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(r"Site starting on (\d+)", line)
            if match:
                break
        else:
            pytest.fail("twistd exited before listening")
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=30)


PHONE: Any = {"width": 360, "height": 640}
"""
A phone-width window.
"""

ATTACK = b"""<!doctype html>
<form id="attack" method="post" action="%s/logout">
  <input type="hidden" name="csrf_token" value="guessed">
</form>
<script>document.getElementById("attack").submit();</script>
"""
"""
A page on another origin that, once opened, posts a form to the demo's
C{/logout} (a CSRF attack: logging the visitor out); C{%s} is the demo's base.
"""


COUNT_TOKENS = """() => fetch("/").then(r => r.text()).then(
    t => (t.match(/name="csrf_token" value="[^"]+"/g) || []).length)"""
"""
A script counting the CSRF tokens of the home page's forms.
"""


@contextmanager
def otherOrigin(page: bytes) -> Iterator[str]:
    """
    Serve one page on another port of 127.0.0.1 (another origin than the
    demo's), in a thread of its own.

    @return: its URL.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _browse(base: str, executable: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, args=ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport=PHONE)

            def buttons() -> list[str]:
                return [
                    b
                    for b in ("#login", "#logout", "#user", "#secret")
                    if page.locator(b).count()
                ]

            def fits() -> bool:
                return bool(
                    page.evaluate(
                        "document.documentElement.scrollWidth <= window.innerWidth"
                    )
                )

            page.goto(base + "/")
            seen["before"] = (page.inner_text("#state"), buttons(), fits())
            page.click("#login")  # no user name: the browser keeps the form
            seen["emptyRefused"] = page.url
            page.fill("#user", "alice")
            page.click("#login")
            page.wait_for_url(base + "/")
            seen["loggedIn"] = (page.inner_text("#state"), buttons(), fits())
            seen["welcome"] = page.inner_text("#notice")
            page.click("#secret")
            page.wait_for_url(base + "/secret")
            seen["secret"] = (page.inner_text("#message"), fits())
            seen["documentCookie"] = page.evaluate("document.cookie")
            seen["cookies"] = page.context.cookies()
            seen["tokens"] = page.evaluate(COUNT_TOKENS)
            with otherOrigin(ATTACK % base.encode()) as attacker:
                with page.expect_response(base + "/logout") as attacked:
                    page.goto(attacker)
                page.wait_for_load_state()
                seen["attacked"] = (
                    attacked.value.status,
                    page.inner_text("body").strip(),
                )
            page.goto(base + "/secret")
            seen["stillIn"] = page.inner_text("#message")
            page.click("#home")
            page.wait_for_url(base + "/")
            seen["noticeOnce"] = page.inner_text("#notice")
            page.click("#logout")
            page.wait_for_url(base + "/")
            seen["loggedOut"] = (page.inner_text("#state"), buttons())
            seen["goodbye"] = page.inner_text("#notice")
            response = page.goto(base + "/secret")
            assert response is not None
            seen["refused"] = (response.status, page.inner_text("#message"))
            page.click("#home")
            page.wait_for_url(base + "/")
            seen["back"] = page.inner_text("#state")
        finally:
            browser.close()
    return seen


def test_loginSecretLogoutInChromium(demo: str, browserPath: str) -> None:
    # Playwright's sync API runs its own event loop: give it a thread of its
    # own, away from the reactor's.
    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(_browse, demo, browserPath).result(timeout=120)
    assert seen["before"] == ("You are not logged in.", ["#login", "#user"], True)
    assert seen["emptyRefused"] == demo + "/"
    assert seen["loggedIn"] == (
        "You are logged in as alice.",
        ["#logout", "#secret"],
        True,
    )
    assert seen["welcome"] == "Welcome, alice! You logged in."
    assert seen["secret"] == ("The cake is a lie!", True)
    assert "mycookiesessionnameid" not in seen["documentCookie"]
    [cookie] = [c for c in seen["cookies"] if c["name"] == "mycookiesessionnameid"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert seen["tokens"] == 2  # the logout form's, and "log out the others"
    # A page on another origin posting to the demo is refused, and changes
    # nothing: the user is still logged in.
    assert seen["attacked"] == (403, "Forbidden: the CSRF check failed")
    assert seen["stillIn"] == "The cake is a lie!"
    assert seen["noticeOnce"] == ""
    assert seen["loggedOut"] == ("You are not logged in.", ["#login", "#user"])
    assert seen["goodbye"] == "You logged out."
    assert seen["refused"] == (403, "Forbidden: log in first.")
    assert seen["back"] == "You are not logged in."


def test_chromiumFoundOnPathUnderAnyOfItsNames(tmp_path: Any, monkeypatch: Any) -> None:
    fake = tmp_path / "chromium-browser"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert chromium() == str(fake)


def _logOutTheOthers(base: str, executable: str) -> dict[str, Any]:
    """
    Log in as alice from two browser contexts (two cookie jars: a laptop
    and a phone), and use the laptop's "Log out the others" button.
    """
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, args=ARGS, headless=True
        )
        try:
            pages = {}
            for name in ("phone", "laptop"):
                context = browser.new_context(user_agent=f"{name.title()} Browser")
                page = pages[name] = context.new_page()
                page.goto(base + "/")
                page.fill("#user", "alice")
                page.click("#login")
                page.wait_for_url(base + "/")
            laptop, phone = pages["laptop"], pages["phone"]
            seen["devices"] = laptop.locator("#devices li").all_inner_texts()
            seen["current"] = laptop.locator("#devices li.current").all_inner_texts()
            laptop.click("#logout-others")
            laptop.wait_for_url(base + "/")
            seen["notice"] = laptop.inner_text("#notice")
            seen["laptop"] = laptop.inner_text("#state")
            seen["laptopDevices"] = laptop.locator("#devices li").all_inner_texts()
            phone.reload()
            seen["phone"] = (
                phone.inner_text("#state"),
                phone.locator("#devices").count(),
            )
        finally:
            browser.close()
    return seen


def test_logOutTheOthersInChromium(demo: str, browserPath: str) -> None:
    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(_logOutTheOthers, demo, browserPath).result(timeout=120)
    assert len(seen["devices"]) == 2
    assert any("Phone Browser" in d for d in seen["devices"])
    assert (
        len(seen["current"]) == 1
        and "This browser: Laptop Browser" in seen["current"][0]
    )
    assert seen["notice"] == "You logged out 1 other session."
    assert seen["laptop"] == "You are logged in as alice."
    assert len(seen["laptopDevices"]) == 1
    assert seen["phone"] == ("You are not logged in.", 0)
