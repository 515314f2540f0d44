"""The README's code blocks, for the tests that run them as written.

Every fenced block of README.md follows a marker that names the test running it:

    <!-- example: NAME (tests/path.py::test_name runs it) -->

(``sql:`` and ``ci:`` markers read the same). ``block(NAME)`` is a block's code;
``runnable(NAME, VAR=value...)`` is the same with the only changes a test makes to it, all
listed here: the block's variable line (the first line a reader changes: their server, their
directory) with the test's values, and, in shell blocks, the flowlog command of a clone's
``.venv`` as the ``flowlog`` that ``environment`` puts first on the PATH (this interpreter's
``python -m flowlog.cli``; but for the install block, which makes that ``.venv``). Shell blocks
run under ``bash -euo pipefail``; ``background`` runs one that ends in ``flowlog serve`` until
the server is ready, then stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from flowlog.bench.harness import NotReady, until_ready

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# The line at the top of a block that a reader changes to their own values; a test replaces
# exactly this line (with the same variables), and nothing else but COMMANDS.
VARIABLES = {
    "quickstart": "API=http://127.0.0.1:8080",
    "two-roles": "SERVER=db:5432 OWNER=flowlog_owner RUNTIME=flowlog DB=flowlog",
    "replicas-server": "export FLOWLOG_READ_DATABASE_URL=postgresql://flowlog@replica1/flowlog,"
    "postgresql://flowlog@replica2/flowlog",
    "replicas": "API=http://127.0.0.1:8080",
    "retention": "ARCHIVE_DIR=$HOME/flowlog-archive RETENTION=0s"
    "  # 0s: every ended flow goes now; 30d is usual",
    "client": 'API, TOKEN = "http://127.0.0.1:8080", None',
    "flows": "API=http://127.0.0.1:8080",
    "telemetry": "COLLECTOR=http://collector:4318",
    "eventstore": 'DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/flowlog"',
}
COMMANDS = {".venv/bin/flowlog": "flowlog"}
MAKES_ITS_VENV = {"install"}
"""Blocks whose flowlog command is the one they install: COMMANDS do not apply."""

_MARKER = re.compile(r"<!-- (?:example|sql|ci): (?P<name>[a-z][a-z -]*?) \((?P<note>[^\n]*)\) -->")
_TEST = re.compile(r"(?P<path>tests/[\w/]+\.py)::(?P<test>test_\w+)")


@dataclasses.dataclass(frozen=True)
class Block:
    name: str | None
    """None: no marker before it."""
    note: str
    language: str
    code: str
    line: int


def blocks(text: str | None = None) -> list[Block]:
    """The fenced blocks of the README (or of ``text``), in order, with their markers."""
    lines = (README.read_text() if text is None else text).splitlines()
    found, at = [], 0
    while at < len(lines):
        opening = re.fullmatch(r"```(\w*)", lines[at])
        if opening is None:
            at += 1
            continue
        end = next((n for n in range(at + 1, len(lines)) if lines[n] == "```"), len(lines))
        marker = _MARKER.fullmatch(lines[at - 1]) if at else None
        name, note = (marker["name"], marker["note"]) if marker else (None, "")
        code = "".join(line + "\n" for line in lines[at + 1 : end])
        found.append(Block(name, note, opening[1], code, at + 1))
        at = end + 1
    return found


def problems(text: str | None = None) -> list[str]:
    """Why a block of the README (or of ``text``) is not known to run: no marker, a marker
    naming no test, a test that does not read the block, two blocks of one name."""
    found, seen = [], set()
    for block in blocks(text):
        where = f"README.md:{block.line}"
        if block.name is None:
            found.append(f"{where}: a {block.language or 'plain'} block without a marker")
            continue
        if block.name in seen:
            found.append(f"{where}: a second block named {block.name!r}")
        seen.add(block.name)
        test = _TEST.search(block.note)
        if test is None:
            found.append(f"{where}: the marker of {block.name!r} names no tests/...::test_...")
            continue
        path = ROOT / test["path"]
        source = path.read_text() if path.is_file() else ""
        if not re.search(rf"^(async )?def {test['test']}\(", source, re.MULTILINE):
            found.append(f"{where}: {test.group(0)} does not exist")
        elif f'"{block.name}"' not in source:
            found.append(f"{where}: {test['path']} never reads the block {block.name!r}")
    return found


def block(name: str) -> str:
    return _named(name).code


def _named(name: str) -> Block:
    matching = [b for b in blocks() if b.name == name]
    assert len(matching) == 1, f"the README has {len(matching)} blocks named {name!r}"
    return matching[0]


def runnable(name: str, **values: str | None) -> str:
    """The block ``name`` with its variable line set to ``values`` (every variable of the
    line, none other), and the shell's flowlog command of the tests."""
    found = _named(name)
    code = found.code
    if name in VARIABLES:
        line = VARIABLES[name]
        first = next(
            text for text in code.splitlines()
            if text.strip() and not text.startswith(("import ", "from ", "#"))
        )  # fmt: skip
        assert first == line, f"{name}: the variable line is now {first!r}, not {line!r}"
        code = code.replace(line, _assign(line, values), 1)
    else:
        assert not values, f"{name} has no variable line"
    if found.language == "sh" and name not in MAKES_ITS_VENV:
        for written, tested in COMMANDS.items():
            code = code.replace(written, tested)
    return code


def _assign(line: str, values: dict[str, str | None]) -> str:
    if " = " in line:  # Python: NAME, NAME = value, value
        names = [n.strip() for n in line.split(" = ", 1)[0].split(",")]
        assert set(names) == set(values), (names, values)
        return f"{', '.join(names)} = {', '.join(repr(values[n]) for n in names)}"
    export = "export " if line.startswith("export ") else ""
    names = re.findall(r"(?:^|\s)(\w+)=", line.removeprefix(export))
    assert set(names) == set(values), (names, values)
    return export + " ".join(f"{n}={shlex.quote(values[n] or '')}" for n in names)


def environment(folder: Path, **extra: str) -> dict[str, str]:
    """This process's environment without flowlog's, OpenTelemetry's and libpq's settings,
    with a ``flowlog`` command (this interpreter's) first on the PATH and ``extra``."""
    bin_dir = folder / "readme-bin"
    bin_dir.mkdir(exist_ok=True)
    command = bin_dir / "flowlog"
    command.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m flowlog.cli "$@"\n')
    command.chmod(0o755)
    kept = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("FLOWLOG_", "OTEL_", "PG")) and key != "DATABASE_URL"
    }  # fmt: skip
    return {
        **kept,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "FLOWLOG_LOG_LEVEL": "WARNING",
        **extra,
    }


async def run_shell(script: str, env: dict[str, str], *, within: float = 120) -> str:
    """Runs ``script`` under ``bash -euo pipefail`` in the repository: its output."""
    shell = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(shell.communicate(), within)
    except TimeoutError:
        shell.kill()
        await shell.wait()
        raise
    assert shell.returncode == 0, f"exit {shell.returncode}:\n{err.decode()}\n{out.decode()}"
    return out.decode()


@contextlib.asynccontextmanager
async def background(
    script: str, env: dict[str, str], log: Path, *, cwd: Path = ROOT, ready_within: float = 60
) -> AsyncIterator[str]:
    """Runs a block that ends in ``flowlog serve`` (on ``env``'s FLOWLOG_PORT) until the
    server answers /readyz: its base URL. Then SIGTERM to it and its shell, and their end."""
    base = f"http://127.0.0.1:{env['FLOWLOG_PORT']}"
    with log.open("wb") as output:
        # The trap: the shell waits for the server's own graceful end before it exits.
        shell = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", "trap 'exit 143' TERM\n" + script,
            cwd=cwd, env={**env, "FLOWLOG_HOST": "127.0.0.1"}, stdout=output, stderr=output,
            start_new_session=True,
        )  # fmt: skip
    try:
        await _until_ready(base, shell, log, ready_within)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(shell.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            await shell.wait()


async def _until_ready(
    base: str, shell: asyncio.subprocess.Process, log: Path, within: float
) -> None:
    try:
        await until_ready(base, shell, within)
    except NotReady as exc:
        said = await asyncio.to_thread(log.read_text, errors="replace")
        raise AssertionError(f"{exc}:\n{said}") from None


async def get(base: str, path: str) -> tuple[int, Any]:
    """GET ``path`` of a server: the status and the JSON answer."""
    async with aiohttp.ClientSession(base) as session, session.get(path) as answer:
        return answer.status, await answer.json()
