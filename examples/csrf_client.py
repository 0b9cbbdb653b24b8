"""
docs/csrf.md: what a browser does with examples/csrf.py's page, step by
step: load the form (and the session cookie), post it with its token, then
post as the page's fetch() call does, with the token in a header.

    $ python examples/csrf_client.py http://localhost:8080
"""

import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar


def main(base: str) -> None:
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(CookieJar())
    )
    page = browser.open(base + "/").read().decode()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, "the page holds no token"
    token = match.group(1)
    print(f"GET / -> a form with a token of {len(token)} characters")

    form = urllib.parse.urlencode({"csrf_token": token, "text": "Hello"}).encode()
    answer = browser.open(base + "/comment", data=form).read().decode()
    print("POST /comment with the token ->", answer.strip())

    like = urllib.request.Request(
        base + "/like", method="POST", headers={"X-CSRF-Token": token}
    )
    print("POST /like with the header ->", browser.open(like).read().decode().strip())

    forged = urllib.parse.urlencode({"text": "forged"}).encode()
    try:
        browser.open(base + "/comment", data=forged)
    except urllib.error.HTTPError as e:
        print("POST /comment without the token ->", e.code, e.read().decode().strip())


if __name__ == "__main__":
    main(sys.argv[1])
