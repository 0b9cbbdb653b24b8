"""
The documentation runs: every command in README.md and docs/*.md is run by
these tests, and every app it shows is the app that runs, so the
documentation cannot rot unnoticed.

The convention, for anyone writing documentation here:

  - Shell commands live only in C{```console} fenced blocks, one command per
    line, each prefixed with C{$ }.  A fence labelled C{sh}, C{bash},
    C{shell}, C{shell-session} or C{zsh}, or not labelled at all, is
    refused, and so is a C{$ } line in any other block: a command cannot
    hide from the tests.  Other labels (C{python}, C{nginx}, C{crontab},
    ...) are not shell.
  - One command per line: no C{&&}, C{||}, C{;} or C{|}, and each names a
    program the tests know how to run: C{curl}, C{python}, C{twistd},
    C{txsessions}, C{redis-server} or C{redis-cli}, perhaps after variables set for it
    (C{PYTHONPATH=examples twistd ...}).  A trailing C{# comment} is fine.
  - The lines after a command, up to the next C{$ }, are its expected
    output, compared with what it prints (stdout and stderr as they come;
    carriage returns, trailing spaces and blank lines ignored): the lines
    must match one for one, in order, except that C{...} inside a line matches any
    text and a line holding only C{...} matches any number of lines.  A
    command shown with no output must print nothing.  It must also exit
    with status 0.
  - A command ending in C{ &} is a server, started in the background for
    the rest of its block: the test waits until it says it is ready
    (twistd's "Site starting on", the examples' "Now listening on",
    redis-server's "Ready to accept connections"; no polling), and stops it
    (SIGTERM) when the block ends.  A server shows no output.
  - A block needing curl, redis-server, redis-cli or wrk where it is not
    installed is skipped, naming what to install, or fails under CI (as
    the Redis tests do).
  - A C{```text} block after a console block shows lines its servers log:
    each must match a line they wrote (C{...} matches any text, and a
    shortened key, C{6f54f1…}, any shortened key).
  - Each block is a self-contained session, run in a fresh directory
    holding copies of the checkout's C{examples/} and C{bench/}: a reader
    can try any block alone, from the checkout.  Blocks share nothing.
  - Ports: documents use 8080 for HTTP, 8081 for a second server and 6379
    for Redis.  Each block gets three free ports instead, on 127.0.0.1
    (nothing ever touches a real 6379): C{tcp:8080} becomes
    C{tcp:PORT:interface=127.0.0.1}, C{localhost:8080} becomes
    C{127.0.0.1:PORT}, C{redis-server --port 6379} gains C{--bind
    127.0.0.1}, and any other 8080, 8081 or 6379 becomes its port, in
    expected output too.  A server command must name its port.

Python blocks (C{```python}):

  - A block right after C{<!-- example: examples/NAME.py -->} is a complete
    app: it must be exactly that file, and a console block of the same
    document must run that file.  So the code a reader copies is the code
    the tests serve and request.
  - Any other Python block is a fragment of an app (a decorator, a
    wrapper): it must compile, and every name it imports from txsessions
    must exist.

The README's first block holds the two commands a newcomer types first:

  - C{pip install . && twistd -n txsessions}: these tests do not install
    anything; the package under test was installed by tox (or by hand, see
    the README's Development section) before they run.  So the test checks
    what C{pip install .} leaves behind (a txsessions distribution of this
    checkout's version, whose twistd plugin C{twistd --help} lists, run
    from outside the checkout), then starts C{twistd -n txsessions}
    exactly as written, plus C{--listen} on a free port, and requests the
    demo's home page from it.
  - C{pip install tox && tox}: tox cannot run inside tox (it would run
    these tests again, recursively), and installing from PyPI is not a
    test's business.  C{.ci/run} is what runs C{pip install tox} and
    C{tox} for real on every CI run; this test checks that it still does,
    and that tox.ini still runs what the README promises: ruff, mypy, and
    the tests under the default and asyncio reactors.

The subprocesses (twistd, the examples) import the installed txsessions,
which may lag behind this checkout until it is reinstalled.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.metadata
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol

from tests.processes import READY
from tests.redis import freePorts

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCUMENTS = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
"""
Every document whose commands run: the README and each page under docs/.
"""

WITHOUT_COMMANDS = {DOCS / "index.md"}
"""
The documents allowed to show no command (the index only links).
"""

SHELL_LABELS = {"", "sh", "bash", "shell", "shell-session", "zsh", "console"}
"""
Fence labels of shell: only C{console} is accepted, and the others refused.
"""

FOREGROUND = {"curl", "python", "redis-cli", "twistd", "txsessions"}
BACKGROUND = {"python", "twistd", "redis-server"}
DOC_PORTS = (8080, 8081, 6379)
ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=")
"""
A variable set for one command (C{PYTHONPATH=examples twistd ...}).
"""
ASSIGNMENTS = re.compile(r"^((?:[A-Z_][A-Z0-9_]*=\S*\s+)*)")
"""
The variables a command starts with, which C{exec} must follow.
"""
EXAMPLE = re.compile(r"<!-- example: (\S+) -->")
WAIT = 60.0
"""
Seconds a server may take to be ready, or a command to finish.
"""

INSTALL_AND_SERVE = "pip install . && twistd -n txsessions"
INSTALL_AND_TEST = "pip install tox && tox"
SPECIAL = {INSTALL_AND_SERVE, INSTALL_AND_TEST}
"""
The README's first two commands, run as the module docstring says.
"""

SERVER_READY = re.compile(READY.pattern + rb"|(Ready to accept connections)")


class DocsError(Exception):
    """
    A document breaks the convention.
    """


@attrs.frozen
class Command:
    """
    One C{$ } line of a console block.

    @ivar text: the command as written, without C{$ }, C{&} or comment.
    @ivar expected: the output lines shown after it.
    @ivar background: whether it ends in C{&}.
    """

    text: str
    line: int
    expected: tuple[str, ...] = ()
    background: bool = False


@attrs.frozen
class Block:
    """
    A fenced block.

    @ivar label: the fence's language label.
    @ivar marker: the C{<!-- ... -->} line right before the fence, if any.
    """

    path: Path
    line: int
    label: str
    body: str
    marker: str = ""
    commands: tuple[Command, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def example(self) -> str | None:
        match = EXAMPLE.fullmatch(self.marker)
        return match.group(1) if match else None


def parse(path: Path, text: str | None = None) -> list[Block]:
    """
    The fenced blocks of a markdown document, console blocks parsed.

    @raise DocsError: where the document breaks the convention.
    """
    if text is None:
        text = path.read_text()
    lines = text.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("```"):
            index += 1
            continue
        label = line[3:].strip()
        start = index + 1
        end = start
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise DocsError(f"{path.name}:{index + 1}: unclosed fence")
        where = f"{path.name}:{index + 1}"
        if label in SHELL_LABELS and label != "console":
            raise DocsError(
                f"{where}: a ```{label} block; shell commands go in ```console "
                "blocks, each line prefixed with '$ '"
            )
        marker = lines[index - 1].strip() if index > 0 else ""
        marker = marker if marker.startswith("<!--") else ""
        body = "\n".join(lines[start:end])
        commands: tuple[Command, ...] = ()
        if label == "console":
            commands = parseCommands(where, start + 1, lines[start:end])
        elif any(line.startswith("$ ") for line in lines[start:end]):
            raise DocsError(
                f"{where}: a '$ ' command in a ```{label} block; commands go in "
                "```console blocks"
            )
        blocks.append(Block(path, index + 1, label, body, marker, commands))
        index = end + 1
    return blocks


def parseCommands(where: str, first: int, lines: Sequence[str]) -> tuple[Command, ...]:
    """
    The commands of a console block, each with its expected output.
    """
    commands: list[Command] = []
    for number, line in enumerate(lines, first):
        if line.startswith("$ "):
            text, background = splitCommand(f"{where} (line {number})", line[2:])
            commands.append(Command(text, number, (), background))
        elif not line.strip():
            continue
        elif not commands:
            raise DocsError(f"{where}: output before any '$ ' command: {line!r}")
        elif commands[-1].background:
            raise DocsError(f"{where}: a background server shows no output: {line!r}")
        else:
            commands[-1] = attrs.evolve(
                commands[-1], expected=(*commands[-1].expected, line)
            )
    if not commands:
        raise DocsError(f"{where}: a console block with no '$ ' command")
    return tuple(commands)


def splitCommand(where: str, written: str) -> tuple[str, bool]:
    """
    Check one command against the convention.

    @return: the command without comment or C{&}, and whether it is a
        server.
    """
    lexer = shlex.shlex(written, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError as e:
        raise DocsError(f"{where}: cannot split {written!r}: {e}") from None
    background = bool(tokens) and tokens[-1] == "&"
    if background:
        tokens.pop()
    text = written.split(" #", 1)[0].strip()
    text = text[:-1].rstrip() if background else text
    if text in SPECIAL:
        return text, background
    if not tokens:
        raise DocsError(f"{where}: an empty command")
    while tokens and ASSIGNMENT.match(tokens[0]):
        tokens.pop(0)
    if not tokens:
        raise DocsError(f"{where}: no command after the variables: {written!r}")
    operators = [t for t in tokens if t and set(t) <= set("&|;<>()")]
    if operators:
        raise DocsError(
            f"{where}: one command per line, without {' '.join(operators)}: {written!r}"
        )
    known = BACKGROUND if background else FOREGROUND
    if tokens[0] not in known:
        kind = "server" if background else "command"
        raise DocsError(
            f"{where}: the tests cannot run the {kind} {tokens[0]!r} "
            f"(they know {', '.join(sorted(known))}): {written!r}"
        )
    if background and not any(str(port) in text for port in DOC_PORTS):
        raise DocsError(
            f"{where}: a server must name its port (8080, 8081 or 6379): {written!r}"
        )
    return text, background


def matches(expected: Sequence[str], output: str) -> bool:
    """
    Whether a command's output is the output the document shows for it.
    """
    patterns = [line.rstrip() for line in expected if line.strip()]
    lines = [
        line.rstrip() for line in output.replace("\r", "").splitlines() if line.strip()
    ]
    return _match(patterns, lines)


def _match(patterns: Sequence[str], lines: Sequence[str]) -> bool:
    if not patterns:
        return not lines
    head, rest = patterns[0], patterns[1:]
    if head.strip() == "...":
        return any(_match(rest, lines[i:]) for i in range(len(lines) + 1))
    if not lines:
        return False
    regex = ".*".join(re.escape(part) for part in head.split("..."))
    return re.fullmatch(regex, lines[0]) is not None and _match(rest, lines[1:])


def rewrite(text: str, ports: dict[int, int], command: bool = True) -> str:
    """
    Move a command (or its expected output) from the documents' ports to
    the block's own.
    """
    for documented, port in ports.items():
        if command:
            text = re.sub(
                rf"\btcp:{documented}(:interface=[^\s:]+)?(?!\d)",
                f"tcp:{port}:interface=127.0.0.1",
                text,
            )
            text = text.replace(f"localhost:{documented}", f"127.0.0.1:{port}")
            text = re.sub(
                rf"^redis-server --port {documented}\b",
                f"redis-server --port {port} --bind 127.0.0.1",
                text,
            )
        text = re.sub(rf"(?<![\d.]){documented}(?!\d)", str(port), text)
    return text


def load(path: Path) -> list[Block] | DocsError:
    try:
        return parse(path)
    except DocsError as e:
        return e


PARSED = {path: load(path) for path in DOCUMENTS}


def blocks(label: str) -> Iterator[Any]:
    for parsed in PARSED.values():
        if isinstance(parsed, DocsError):
            continue
        for block in parsed:
            if block.label == label:
                yield pytest.param(block, id=block.name)


def logBlocks() -> dict[str, Block]:
    """
    The C{```text} blocks of log lines, by the name of the console block
    they follow (the one before them in their document).
    """
    found: dict[str, Block] = {}
    for parsed in PARSED.values():
        if isinstance(parsed, DocsError):
            continue
        console: Block | None = None
        for block in parsed:
            if block.label == "console":
                console = block
            elif block.label == "text" and console is not None:
                found[console.name] = block
    return found


LOGS = logBlocks()

REDACTED = re.compile(r"[0-9A-Za-z_-]{6}\N{HORIZONTAL ELLIPSIS}")
"""
A shortened id or key in a log line (L{txsessions.ids.redact}): in a
document's log lines, it stands for any.
"""


def logLineShown(pattern: str, output: str) -> bool:
    """
    Whether a log line a document shows is among the lines logged: C{...}
    matches any text, and a shortened key any shortened key.
    """
    regex = ".*".join(
        REDACTED.sub(lambda _: "\x00", re.escape(part)).replace(
            "\x00", REDACTED.pattern
        )
        for part in pattern.strip().split("...")
    )
    return any(re.fullmatch(regex, line.rstrip()) for line in output.splitlines())


def environment() -> dict[str, str]:
    """
    What a reader's shell would have: this Python's scripts first on the
    PATH, and no PYTHONPATH (the installed txsessions, not the checkout's).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Child(ProcessProtocol):
    def __init__(self, background: bool) -> None:
        self.output = b""
        self.ready: Deferred[int | None] | None = Deferred() if background else None
        self.ended: Deferred[int | None] = Deferred()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.output += data
        if self.ready is not None and not self.ready.called:
            match = SERVER_READY.search(self.output)
            if match:
                self.ready.callback(int(match.group(1)) if match.group(1) else None)

    def processEnded(self, reason: Any) -> None:
        if self.ready is not None and not self.ready.called:
            self.ready.errback(DocsError(f"exited:\n{self.output.decode()}"))
        self.ended.callback(reason.value.exitCode)


class Shell:
    """
    Runs a block's commands as a reader's shell would, in C{directory}.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = dict(zip(DOC_PORTS, freePorts(len(DOC_PORTS)), strict=True))
        self.servers: list[tuple[str, Any, _Child]] = []
        self.logged = ""
        "What the stopped servers wrote."
        for name in ("examples", "bench"):
            # Copies, not links: a bench script run through a link leaves
            # the real bench/ first on sys.path, where its http.py hides the
            # standard library's.
            shutil.copytree(
                ROOT / name,
                directory / name,
                ignore=shutil.ignore_patterns("__pycache__"),
            )

    def spawn(self, text: str, background: bool) -> tuple[Any, _Child]:
        child = _Child(background)
        process = reactor.spawnProcess(
            child,
            "/bin/bash",
            # exec: the signals reach the command, not a shell around it.
            [
                "bash",
                "-c",
                ASSIGNMENTS.sub(r"\1exec ", text),
            ],
            env=environment(),
            path=str(self.directory),
        )
        return process, child

    def context(self) -> str:
        return "".join(
            f"\n--- server {text!r} said:\n{child.output.decode(errors='replace')}"
            for text, _, child in self.servers
        )

    async def run(self, command: Command, timeout: float = WAIT) -> str:
        """
        Run a command to its end; fail unless it succeeds and prints what
        the document shows.

        @return: what it printed.
        """
        text = rewrite(command.text, self.ports)
        process, child = self.spawn(text, background=False)
        try:
            code = await child.ended.addTimeout(timeout, reactor)
        except Exception:
            process.signalProcess("KILL")
            raise
        output = child.output.decode(errors="replace")
        where = f"line {command.line}: {text!r}"
        assert code == 0, f"{where} exited with {code}:\n{output}{self.context()}"
        expected = [
            rewrite(line, self.ports, command=False) for line in command.expected
        ]
        assert matches(expected, output), (
            f"{where} printed\n{output}\nbut the document shows\n"
            + "\n".join(expected)
            + self.context()
        )
        return output

    async def serve(self, command: Command) -> None:
        """
        Start a server for the rest of the block, once it is ready.
        """
        text = rewrite(command.text, self.ports)
        process, child = self.spawn(text, background=True)
        self.servers.append((text, process, child))
        assert child.ready is not None
        port = await child.ready.addTimeout(WAIT, reactor)
        assert port is None or port in self.ports.values(), (
            f"line {command.line}: {text!r} listens on {port}, not a documented port"
        )

    async def stop(self) -> None:
        """
        Stop the servers, the last started first (twistd before Redis).
        """
        for _, process, child in reversed(self.servers):
            try:
                process.signalProcess("TERM")
                await child.ended.addTimeout(WAIT, reactor)
            except ProcessExitedAlready:
                pass
            except Exception:
                process.signalProcess("KILL")
                raise
        self.logged += "".join(
            child.output.decode(errors="replace") for _, _, child in self.servers
        )
        self.servers.clear()


async def installAndServe(shell: Shell, command: Command) -> None:
    """
    C{pip install . && twistd -n txsessions}: check what the install left,
    then serve the demo and request its home page.
    """
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "(.+)"$', pyproject, re.M)
    assert version is not None
    assert importlib.metadata.version("txsessions") == version.group(1)
    output = await shell.run(Command("twistd --help", command.line, ("...",)))
    assert re.search(r"^\s+txsessions\s", output, re.M), output
    await shell.serve(Command("twistd -n txsessions --listen tcp:8080", command.line))
    # treq, not curl: the first command works on a machine without curl.
    response = await treq.get(
        f"http://127.0.0.1:{shell.ports[8080]}/", persistent=False
    )
    assert response.code == 200
    assert "<h1>txsessions demo</h1>" in await response.text()


async def installAndTest(shell: Shell, command: Command) -> None:
    """
    C{pip install tox && tox}: CI runs it; check that it does, and that tox
    runs ruff, mypy and the tests under two reactors (and on the oldest
    versions admitted).
    """
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert any(re.fullmatch(r"python3 -m pip install .*tox.*", c) for c in ci)
    assert ci[-1] == "python3 -m tox"
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    envlist = [e.strip() for e in tox["tox"]["envlist"].split(",")]
    assert envlist == ["lint", "mypy", "docs", "py-default", "py-asyncio", "oldest"]
    docs = tox["testenv:docs"]["commands"].strip().splitlines()
    assert any(line.startswith("pydoctor") for line in docs)
    assert "ruff check" in tox["testenv:lint"]["commands"]
    assert "mypy" in tox["testenv:mypy"]["commands"]
    assert "pytest --reactor={env:REACTOR" in tox["testenv"]["commands"]
    assert "asyncio: REACTOR = asyncio" in tox["testenv"]["set_env"]


SYSTEM_PROGRAMS = {
    "curl": "apt-get install curl",
    "redis-server": "apt-get install redis-server",
    "redis-cli": "apt-get install redis-tools",
    "wrk": "apt-get install wrk",
}
"""
Programs from the system's packages, which C{.ci/run} installs, each with
how to install it.
"""

SCRIPTS_NEEDING = {"bench/http.py": "wrk"}
"""
The scripts the documents run that run a system program themselves.
"""


def programNeeded(command: Command) -> str | None:
    """
    The system program a command needs, if any.
    """
    words = shlex.split(command.text)
    while words and ASSIGNMENT.match(words[0]):
        words.pop(0)
    if words and words[0] in SYSTEM_PROGRAMS:
        return words[0]
    for script, program in SCRIPTS_NEEDING.items():
        if script in words:
            return program
    return None


def requirePrograms(block: Block) -> None:
    """
    Skip a block that needs a program this machine lacks, saying how to
    install it; in CI, fail.
    """
    for command in block.commands:
        program = programNeeded(command)
        if program is not None and not shutil.which(program):
            message = (
                f"{block.name} needs {program}, which is not installed: "
                f"{SYSTEM_PROGRAMS[program]}"
            )
            if os.environ.get("CI"):
                pytest.fail(message + "; .ci/run installs it")
            pytest.skip(message)


async def runBlock(
    block: Block, directory: Path, timeout: float = WAIT, logs: Block | None = None
) -> None:
    """
    Run a console block's commands; then, if C{logs} (a C{```text} block)
    follows it, check that its servers logged each line it shows.
    """
    requirePrograms(block)
    shell = Shell(directory)
    try:
        for command in block.commands:
            if command.text == INSTALL_AND_SERVE:
                await installAndServe(shell, command)
            elif command.text == INSTALL_AND_TEST:
                await installAndTest(shell, command)
            elif command.background:
                await shell.serve(command)
            else:
                await shell.run(command, timeout)
    finally:
        await shell.stop()
    for line in logs.body.splitlines() if logs is not None else []:
        assert not line.strip() or logLineShown(line, shell.logged), (
            f"{logs.name if logs else ''}: no server logged {line!r}:\n{shell.logged}"
        )


# The documents


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documentFollowsTheConvention(path: Path) -> None:
    parsed = PARSED[path]
    if isinstance(parsed, DocsError):
        raise parsed
    commands = sum(len(block.commands) for block in parsed)
    if path in WITHOUT_COMMANDS:
        assert commands == 0
    else:
        assert commands > 0, f"{path.name} shows no command to try"


def test_readmeStartsWithTheTwoCommands() -> None:
    parsed = PARSED[ROOT / "README.md"]
    assert not isinstance(parsed, DocsError)
    first = parsed[0]
    assert first.label == "console"
    assert [c.text for c in first.commands] == [INSTALL_AND_SERVE, INSTALL_AND_TEST]
    assert ROOT.joinpath("README.md").read_text().index("```") < 200


def test_everyPageIsLinked() -> None:
    index = (DOCS / "index.md").read_text()
    readme = (ROOT / "README.md").read_text()
    pages = [p.name for p in DOCUMENTS if p.parent == DOCS and p.name != "index.md"]
    assert pages
    for page in pages:
        assert f"]({page})" in index, f"docs/index.md does not link {page}"
        assert f"](docs/{page})" in readme, f"README.md does not link docs/{page}"
    assert "](docs/index.md)" in readme


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_linksResolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        assert (path.parent / target).exists(), f"{path.name} links {target}"


@pytest.mark.parametrize("block", list(blocks("console")))
@pytest_twisted.ensureDeferred
async def test_consoleBlock(block: Block, tmp_path: Path) -> None:
    await runBlock(block, tmp_path, logs=LOGS.get(block.name))


def test_everyLogBlockFollowsTheBlockThatLogsIt() -> None:
    shown = sum(
        1
        for parsed in PARSED.values()
        if not isinstance(parsed, DocsError)
        for block in parsed
        if block.label == "text"
    )
    assert shown == len(LOGS)


def test_logLinesMatchAnyShortenedKey() -> None:
    event = "[txsessions.manager#info] session {}\N{HORIZONTAL ELLIPSIS} destroyed"
    logged = "2026-12-06 " + event.format("a1B2-_") + " (expired)\n"
    shown = "... " + event.format("6f54f1") + " (expired)"
    assert logLineShown(shown, logged)
    assert not logLineShown(shown.replace("manager", "tap"), logged)
    assert not logLineShown(shown.replace("expired", "destroyed"), logged)


@pytest.mark.parametrize("block", list(blocks("python")))
def test_pythonBlock(block: Block) -> None:
    example = block.example
    if example is not None:
        source = (ROOT / example).read_text()
        assert block.body.strip() == source.strip(), (
            f"{block.name} is not {example} as it is: copy the file in"
        )
        parsed = PARSED[block.path]
        assert not isinstance(parsed, DocsError)
        assert any(example in command.text for b in parsed for command in b.commands), (
            f"{block.path.name} never runs {example}"
        )
        return
    tree = ast.parse(block.body, block.name)
    compile(tree, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "txsessions"
        ):
            module = importlib.import_module(str(node.module))
            for alias in node.names:
                assert hasattr(module, alias.name), (
                    f"{block.name}: {node.module} has no {alias.name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("txsessions"):
                    importlib.import_module(alias.name)


def test_thereIsSomethingToRun() -> None:
    # 17 and 11 when written: a parser that stops finding them fails here.
    assert len(list(blocks("console"))) >= 15
    assert len(list(blocks("python"))) >= 10


# The convention itself


def parseText(text: str) -> list[Block]:
    return parse(ROOT / "example.md", text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```sh\ntwistd -n txsessions\n```\n", "```sh block"),
        ("```\n$ curl http://localhost:8080/\n```\n", "``` block"),
        ("```console\n$ rm -rf build\n```\n", "cannot run the command 'rm'"),
        ("```console\n$ curl a && curl b\n```\n", "without &&"),
        ("```console\n$ curl a | grep b\n```\n", "without |"),
        ("```console\nhello\n$ curl a\n```\n", "output before"),
        ("```console\n$ twistd -n txsessions &\n```\n", "must name its port"),
        ("```console\n$ curl a &\n```\n", "cannot run the server 'curl'"),
        ("```console\n$ redis-server --port 6379 &\nok\n```\n", "shows no output"),
        ("```console\n```\n", "no '$ ' command"),
        ("```console\n$ curl a\n", "unclosed"),
        ("```console\n$ X=1 rm a\n```\n", "cannot run the command 'rm'"),
        ("```console\n$ X=1\n```\n", "no command after the variables"),
        ("```text\n$ curl a\n```\n", "in a ```text block"),
    ],
)
def test_parserRefuses(text: str, message: str) -> None:
    with pytest.raises(DocsError, match=re.escape(message)):
        parseText(text)


def test_parserReadsCommandsAndOutput() -> None:
    [block] = parseText(
        "```console\n"
        "$ redis-server --port 6379 &\n"
        "$ curl -s http://localhost:8080/   # a comment\n"
        "Forbidden\n\n...\n"
        "$ pip install . && twistd -n txsessions      # the demo\n"
        "```\n"
    )
    assert block.commands == (
        Command("redis-server --port 6379", 2, (), True),
        Command("curl -s http://localhost:8080/", 3, ("Forbidden", "..."), False),
        Command(INSTALL_AND_SERVE, 7, (), False),
    )


@pytest.mark.parametrize(
    ("expected", "output", "result"),
    [
        ([], "", True),
        ([], "\n \r\n", True),
        ([], "something", False),
        (["Forbidden"], "Forbidden", True),
        (["Forbidden"], "Forbidden!", False),
        (["Forbidden"], "Forbidden\nmore", False),
        (["a", "b"], "b\na", False),
        (["Set-Cookie: sid=...; Path=/"], "Set-Cookie: sid=x1; Path=/\r\n", True),
        (["Set-Cookie: sid=...; Path=/"], "Set-Cookie: sid=x1; Path=/a", False),
        (["HTTP/1.1 200 OK", "...", "bye"], "HTTP/1.1 200 OK\nA: b\nC: d\n\nbye", True),
        (["HTTP/1.1 200 OK", "...", "bye"], "HTTP/1.1 200 OK\nbye", True),
        (["HTTP/1.1 200 OK", "...", "bye"], "HTTP/1.1 403 Forbidden\nbye", False),
        (["..."], "", True),
        (["x", "..."], "", False),
        (["a.b"], "axb", False),
    ],
)
def test_matches(expected: list[str], output: str, result: bool) -> None:
    assert matches(expected, output) is result


def test_rewrite() -> None:
    ports = {8080: 1001, 8081: 1002, 6379: 1003}
    assert rewrite("twistd -n txsessions --listen tcp:8080", ports) == (
        "twistd -n txsessions --listen tcp:1001:interface=127.0.0.1"
    )
    assert (
        rewrite("curl http://localhost:8081/x", ports) == "curl http://127.0.0.1:1002/x"
    )
    assert rewrite("redis-server --port 6379", ports) == (
        "redis-server --port 1003 --bind 127.0.0.1"
    )
    assert rewrite("--database redis://127.0.0.1:6379/0", ports) == (
        "--database redis://127.0.0.1:1003/0"
    )
    assert rewrite("Site starting on 8080", ports, command=False) == (
        "Site starting on 1001"
    )
    assert rewrite("18080 80800 1.8080", ports) == "18080 80800 1.8080"


def test_theCoreInstallHasNoDatabaseBackend() -> None:
    """
    C{pip install .} brings neither txredisapi, hiredis nor lmdb: they come
    with the C{redis} and C{lmdb} extras, which C{all} and C{test} include
    (the C{redis} extra with Twisted's C{tls} and a C{service_identity}
    recent enough, which C{rediss://} needs to check the server).
    """
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[ <>=;\[]", d)[0].lower() for d in project["dependencies"]}
    assert names.isdisjoint({"txredisapi", "hiredis", "lmdb", "prometheus-client"})
    extras = project["optional-dependencies"]
    assert extras["redis"] == [
        "txredisapi>=1.6",
        "hiredis>=2",
        "twisted[tls]",
        "service_identity>=23.1",
    ]
    assert extras["lmdb"] == ["lmdb>=1.4"]
    assert extras["all"] == ["txsessions[redis,lmdb,prometheus]"]
    assert "txsessions[all,testing]" in extras["test"]
    testing = {re.split(r"[ <>=;]", d)[0] for d in extras["testing"]}
    assert {"pytest", "pytest-twisted", "treq"} <= testing


EDITABLE = "pip install -e . --config-settings editable_mode=compat"
"""
The README's command for a development install that C{twistd} finds the
plugin of (a plain C{pip install -e .} hides C{twisted/plugins}).
"""

TWISTD = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)


def test_theEditableInstallTheReadmeGivesServesTwistdTxsessions(
    tmp_path: Path,
) -> None:
    """
    Run the README's development install into a fresh virtualenv (its
    dependencies lent by this one), then C{twistd txsessions --help} from
    outside the checkout.
    """
    import subprocess
    import sysconfig
    import venv

    assert f"`{EDITABLE}`" in (ROOT / "README.md").read_text()
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    for name in ("txsessions", "twisted"):
        shutil.copytree(
            ROOT / name,
            source / name,
            ignore=shutil.ignore_patterns("__pycache__", "dropin.cache"),
        )
    venv.create(tmp_path / "venv", with_pip=False)
    python = str(tmp_path / "venv" / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "lent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip, install = EDITABLE.split(" ", 1)
    subprocess.run(
        [sys.executable, "-m", pip, "--python", python, *install.split(), "--no-deps"],
        cwd=source,
        env=environment(),
        capture_output=True,
        check=True,
        timeout=300,
    )
    result = subprocess.run(
        [python, "-c", TWISTD, "txsessions", "--help"],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Usage: twistd [options] txsessions [options]")
