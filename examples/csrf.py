"""
docs/csrf.md: a form and a fetch() call protected against cross-site request
forgery by tokens bound to the session.

    $ python examples/csrf.py tcp:8080
"""

import html
import json
import sys

from klein import Klein
from twisted.web.iweb import IRequest

import txsessions
from txsessions import Config, Sessions
from txsessions.demo import serve

app = Klein()
sessions = Sessions(Config(cookie="sid", idleTimeout=1800, csrf=True))

PAGE = """<!doctype html>
<meta name="csrf-token" content="{token}">
<title>Comments</title>
<p>{comments} comments, {likes} likes</p>
<form method="post" action="/comment">
  <input type="hidden" name="csrf_token" value="{token}">
  <input name="text"> <button>Comment</button>
</form>
<button id="like">Like</button>
<script>
  document.getElementById("like").onclick = async () => {{
    const token = document.querySelector('meta[name="csrf-token"]').content;
    const response = await fetch("/like", {{
      method: "POST",
      headers: {{"X-CSRF-Token": token}},
    }});
    alert(JSON.stringify(await response.json()));
  }};
</script>
"""


@app.route("/")
def page(request: IRequest) -> str:
    session = txsessions.get(request)
    # The first token gives a new session its secret, so the session (and
    # its cookie) starts here, with the page that holds the form.
    token = html.escape(session.csrfToken())
    comments = len(session.get("comments", []))
    return PAGE.format(token=token, comments=comments, likes=session.get("likes", 0))


@app.route("/comment", methods=["POST"])
def comment(request: IRequest) -> str:
    # Only reached with a valid token: Config(csrf=True) checked it.
    session = txsessions.get(request)
    text = request.args.get(b"text", [b""])[0].decode("utf-8", "replace")
    comments = [*session.get("comments", []), text]
    session.set("comments", comments)
    return f"Comment {len(comments)}: {text}\n"


@app.route("/like", methods=["POST"])
async def like(request: IRequest) -> str:
    request.setHeader("Content-Type", "application/json")
    likes = await txsessions.get(request).increment("likes")
    return json.dumps({"likes": likes}) + "\n"


resource = sessions.wrap(app.resource())

if __name__ == "__main__":
    serve(resource, sys.argv[1:])
