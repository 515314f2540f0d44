"""Every code block of the README is run by a test, as written (tests/readme.py): the marker
check, and the blocks that need no demo server (the others: tests/api/test_quickstart.py,
tests/replicas/test_readme.py, tests/workflow/test_readme.py,
tests/projections/test_sql_examples.py)."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from flowlog.bench.harness import discard_database, free_port
from flowlog.database import quote_ident, with_database
from tests import readme
from tests.helpers import serving

CI = (readme.ROOT / ".ci" / "run").read_text()


def test_every_readme_block_is_run_by_a_test_that_exists() -> None:
    assert readme.problems() == []
    assert set(readme.VARIABLES) <= {block.name for block in readme.blocks()}


def test_a_block_without_a_marker_or_with_a_wrong_one_is_found() -> None:
    unmarked = "text\n\n```sh\nflowlog serve\n```\n"
    assert readme.problems(unmarked) == ["README.md:3: a sh block without a marker"]
    no_test = "<!-- example: one (runs somewhere) -->\n```sh\ntrue\n```\n"
    assert "names no tests/" in readme.problems(no_test)[0]
    missing = "<!-- example: one (tests/test_readme.py::test_not_there runs it) -->\n```sh\n```\n"
    assert readme.problems(missing) == [
        "README.md:2: tests/test_readme.py::test_not_there does not exist"
    ]
    unread = (
        "<!-- example: unread (tests/test_readme.py::test_the_event_store_block_runs runs it) -->"
        "\n```python\n```\n"
    )
    assert "never reads the block 'unread'" in readme.problems(unread)[0]
    twice = "<!-- example: eventstore (tests/test_readme.py::test_the_event_store_block_runs) -->"
    assert "a second block" in readme.problems(f"{twice}\n```sh\n```\n{twice}\n```sh\n```\n")[0]


def test_ci_runs_the_test_command_as_written() -> None:
    command = readme.block("test command").strip()
    assert "\n" not in command
    # .ci/run finds the command after the marker and runs it: the same line as the block's.
    finder = re.search(r"^test_command=\$\((.*)\)$", CI, re.MULTILINE)
    assert finder is not None, ".ci/run no longer finds the test command in the README"
    found = subprocess.run(["bash", "-c", finder.group(1)], cwd=readme.ROOT, capture_output=True,
                           text=True, timeout=30, check=True)  # fmt: skip
    assert found.stdout.strip() == command
    assert 'bash -c "$test_command"' in CI.splitlines()


def test_ci_runs_the_development_checks_as_written() -> None:
    checks = readme.block("development").strip().split(" && ")
    assert len(checks) == 3
    assert set(checks) <= set(CI.splitlines()), "the README's checks are not .ci/run's"


async def test_the_event_store_block_runs(database_url: str, tmp_path: Path) -> None:
    script = tmp_path / "readme_eventstore.py"
    script.write_text(readme.runnable("eventstore", DATABASE_URL=database_url))
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(script)], cwd=readme.ROOT, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = re.search(r"print\(conflict\)  # (.*)\n", readme.block("eventstore"))
    assert said is not None
    conflict, types = done.stdout.splitlines()
    assert conflict == said.group(1)
    # The stream, then the log since the checkpoint: in order, but the tests' other databases
    # on this server may hold their newest events back for now (the horizon is cluster-wide).
    assert types in {
        f"['AccountOpened', 'Deposited'] {seen}"
        for seen in ("['AccountOpened', 'Deposited']", "['AccountOpened']", "[]")
    }


@pytest.mark.slow
async def test_the_two_roles_block_migrates_and_serves(server_url: str, tmp_path: Path) -> None:
    suffix = secrets.token_hex(4)
    owner, runtime, name = f"readme_owner_{suffix}", f"readme_rt_{suffix}", f"readme_db_{suffix}"
    port = free_port()
    env = readme.environment(tmp_path, FLOWLOG_PORT=str(port))
    block = readme.runnable("two-roles", SERVER=_host_and_port(server_url), OWNER=owner,
                            RUNTIME=runtime, DB=name)  # fmt: skip
    try:
        async with readme.background(block, env, tmp_path / "serve.log") as base:
            assert (await readme.get(base, "/api/v1/workflow/"))[0] == 200
            admin = await asyncpg.connect(with_database(server_url, name))
            try:
                assert await admin.fetchval(
                    "SELECT tableowner FROM pg_tables WHERE tablename = 'events'"
                ) == owner  # fmt: skip
                assert await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2",
                    name, runtime,
                ) > 0  # fmt: skip
                may = "SELECT has_table_privilege($1, 'events', $2)"
                assert await admin.fetchval(may, runtime, "SELECT")
                assert not await admin.fetchval(may, runtime, "DELETE")
            finally:
                await admin.close()
    finally:
        await _retire_with_roles(server_url, name, (runtime, owner))


async def _retire_with_roles(server_url: str, name: str, roles: tuple[str, ...]) -> None:
    """The block's database is retired as every test's is (tests/scratch_databases.py), once
    what its roles own and were granted there is the server superuser's; then the roles go."""
    admin = await asyncpg.connect(server_url)
    try:
        present = [r for r in roles if await admin.fetchval(_ROLE_EXISTS, r)]
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    if exists:
        if present:
            listed = ", ".join(quote_ident(role) for role in present)
            inside = await asyncpg.connect(with_database(server_url, name))
            try:
                await inside.execute(f"REASSIGN OWNED BY {listed} TO CURRENT_USER")
                await inside.execute(f"DROP OWNED BY {listed}")
            finally:
                await inside.close()
        await discard_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    try:
        for role in present:
            await admin.execute(f"DROP ROLE {quote_ident(role)}")
    finally:
        await admin.close()


_ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = $1"


def _host_and_port(url: str) -> str:
    """``host:port`` of a libpq URL, a socket directory's path percent-encoded as libpq reads
    it (the embedded test server listens on its socket only)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or quote(query["host"][0], safe="")
    port = parts.port or int(query.get("port", ["5432"])[0])
    return f"{host}:{port}"


@pytest.mark.slow
async def test_the_telemetry_block_sends_spans_to_a_collector(
    database_url: str, tmp_path: Path
) -> None:
    spans: list[tuple[str, str]] = []

    async def traces(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource in export.resource_spans:
            service = next(a.value.string_value for a in resource.resource.attributes
                           if a.key == "service.name")  # fmt: skip
            spans.extend((service, s.name) for scope in resource.scope_spans for s in scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    collector = web.Application()
    collector.router.add_post("/v1/traces", traces)
    port = free_port()
    env = readme.environment(tmp_path, DATABASE_URL=database_url, FLOWLOG_PORT=str(port))
    async with serving(collector) as collector_url:
        block = readme.runnable("telemetry", COLLECTOR=collector_url)
        async with readme.background(block, env, tmp_path / "serve.log") as base:
            assert (await readme.get(base, "/api/v1/workflow/"))[0] == 200
        # The server sends what it has left when it stops.
    assert ("flowlog", "GET /api/v1/workflow/") in spans


@pytest.mark.slow
async def test_the_install_command_installs_and_serves(database_url: str, tmp_path: Path) -> None:
    """In a copy of the repository without its .venv: a fresh venv, `pip install .` (from the
    package index), and `flowlog serve` of that install."""
    clone = tmp_path / "clone"
    shutil.copytree(readme.ROOT, clone, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build", "dist",
        ".flowlog", "bench-results",
    ))  # fmt: skip
    port = free_port()
    env = readme.environment(tmp_path, DATABASE_URL=database_url, FLOWLOG_PORT=str(port))
    env.pop("PYTHONPATH")  # the install's own package, not this checkout's
    block = readme.runnable("install")
    log = tmp_path / "install.log"
    async with readme.background(block, env, log, cwd=clone, ready_within=600) as base:
        _, health = await readme.get(base, "/healthz")
        assert health["data"]["status"] == "ok"
    installed = await asyncio.to_thread(
        subprocess.run,
        [str(clone / ".venv" / "bin" / "python"), "-c", "import flowlog; print(flowlog.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "site-packages" in installed.stdout
