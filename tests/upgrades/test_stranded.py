"""A deploy that changes a definition's shape strands the old version's running flows (a
reactor claims only the versions it registered): every surface says so, until a process with
that version runs them to their end (docs/operations.md, "Upgrades: stranded flows")."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flowlog.config import Settings
from flowlog.eventstore import create_pool
from flowlog.roles import DatabaseUrls
from flowlog.web import create_app
from flowlog.workflow.definition import Registry
from flowlog.workflow.state import FlowStatus
from flowlog.workflow.versions import Awaiting, awaiting, awaiting_flows, flow_awaits
from tests.engines import StartEngine
from tests.helpers import QUIET, cli_env, run_flowlog
from tests.upgrades.defs import REMOTE, V1, V2
from tests.workflow.helpers import wait_for_status

ROOT = Path(__file__).resolve().parents[2]
WARNING = "flows wait for definition versions no running process has"

Serve = Callable[[Registry], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def serve(database_url: str, runtime_url: str) -> AsyncIterator[Serve]:
    """``flowlog serve`` with the given definitions (API, console and reactor), as deployed."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(registry: Registry) -> TestClient[web.Request, web.Application]:
        settings = Settings.from_env({}).model_copy(
            update={"lease_seconds": 2.0, "concurrency": 8, "pool_size": 5}
        )
        app = create_app(settings, DatabaseUrls(runtime_url, database_url), registry)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, max_size=3)
    yield pool
    await pool.close()


async def _eventually(probe: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await probe():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_a_shape_change_strands_running_flows_and_every_surface_says_so(
    start_engine: StartEngine,
    serve: Serve,
    db: asyncpg.Pool,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flowlog.workflow.versions")
    old = await start_engine(V1)
    flows = [
        (await old.service.create(f"b{i}", "db", "backup", context={"hold": 2}, start=True))
        for i in range(3)
    ]
    ids = sorted(flow.flow_id for flow in flows)
    assert await awaiting(db) == []  # the old process runs them
    await old.stop()  # the deploy: v1 stops, v2 starts

    client = await serve(Registry([V2]))

    stranded = [Awaiting("backup", V1.version, 3)]
    assert await awaiting(db) == stranded
    assert sorted(f.flow_id for f in await awaiting_flows(db)) == ids
    # A warning at start, naming the definitions, versions and counts.
    [warned] = [r for r in caplog.records if r.getMessage() == WARNING]
    assert warned.levelno == logging.WARNING
    assert (warned.definitions, warned.versions, warned.counts) == (  # type: ignore[attr-defined]
        ["backup"],
        [V1.version],
        [3],
    )
    assert "3 flows wait for a process that has version" in warned.awaiting  # type: ignore[attr-defined]

    # /readyz: a detail, and still ready.
    answer = await client.get("/readyz")
    assert answer.status == 200
    body = await answer.json()
    assert body["data"]["status"] == "ready"
    assert body["data"]["stranded"] == [{"definition": "backup", "version": V1.version, "flows": 3}]
    # The metric.
    text = await (await client.get("/metrics")).text()
    assert (
        f'flowlog_flows_awaiting_version{{definition="backup",version="{V1.version}"}} 3.0' in text
    )
    # The console: a banner on the flows page, a line on the flow's page.
    page = await (await client.get("/")).text()
    assert "3 flows wait for a process that has version" in page
    assert f'title="{V1.version}">{V1.version[:12]}</a> of backup' in page
    flow_page = await (await client.get(f"/flows/{ids[0]}")).text()
    assert "waits for a process that has version" in flow_page
    assert f'title="{V1.version}">{V1.version[:12]}</span> of backup' in flow_page

    # The command line.
    env = cli_env(DATABASE_URL=database_url, **QUIET)
    pending = await asyncio.to_thread(run_flowlog, "definitions", "pending", env=env)
    assert pending.returncode == 1, pending.stderr
    assert f"3 flows wait for a process that has version {V1.version[:12]} of backup" in (
        pending.stdout
    )
    assert all(flow_id in pending.stdout for flow_id in ids)
    as_json = await asyncio.to_thread(run_flowlog, "definitions", "pending", "--json", env=env)
    assert as_json.returncode == 1
    report = orjson.loads(as_json.stdout)
    assert report["pending"] == [{"definition": "backup", "version": V1.version, "flows": 3}]
    assert sorted(f["flowId"] for f in report["flows"]) == ids
    # check-definition: they replay the same, yet deploying v2 alone strands them.
    check = await asyncio.to_thread(
        run_flowlog, "check-definition", "tests.upgrades.v2_defs", "--no-progress", env=env
    )
    assert check.returncode == 1, check.stderr
    assert "3 replay the same, 0 diverge; 3 running would be stranded" in check.stdout
    assert f"stranded: 3 running flows of version {V1.version}" in check.stdout
    assert all(f"{flow_id} (version {V1.version}, Processing) would be stranded" in check.stdout
               for flow_id in ids)  # fmt: skip
    checked = await asyncio.to_thread(
        run_flowlog, "check-definition", "tests.upgrades.v2_defs", "--json", "--no-progress",
        env=env,
    )  # fmt: skip
    assert checked.returncode == 1
    assert orjson.loads(checked.stdout)["strandedByVersion"] == {V1.version: 3}
    kept = await asyncio.to_thread(
        run_flowlog, "check-definition", "tests.upgrades.both_defs", "--no-progress", env=env
    )
    assert kept.returncode == 0, kept.stdout
    assert "0 running would be stranded" in kept.stdout

    # A process with v1 again: the flows finish, and every surface clears.
    again = await start_engine(V1)
    for flow_id in ids:
        await wait_for_status(again.service, flow_id, {FlowStatus.FINISHED})
    assert await awaiting(db) == []
    body = await (await client.get("/readyz")).json()
    assert body["data"]["stranded"] == []
    text = await (await client.get("/metrics")).text()
    assert "flowlog_flows_awaiting_version{" not in text
    assert "flows wait for a process" not in await (await client.get("/")).text()
    assert "waits for a process" not in await (await client.get(f"/flows/{ids[0]}")).text()
    cleared = await asyncio.to_thread(run_flowlog, "definitions", "pending", env=env)
    assert cleared.returncode == 0, cleared.stdout
    assert "no flow waits for a definition version" in cleared.stdout


async def test_a_stranded_flow_finishes_after_a_migration_to_the_new_version(
    start_engine: StartEngine, serve: Serve, db: asyncpg.Pool
) -> None:
    """The issue's whole story: a deploy strands flows; they are reported; an admin moves them
    to the new version (FlowMigrated, docs/workflows.md); the new processes run them to their
    end and the report clears."""
    old = await start_engine(V1)
    flows = [await old.service.create(f"m{i}", "db", "backup", context={"hold": 1}, start=True)
             for i in range(2)]  # fmt: skip
    ids = sorted(flow.flow_id for flow in flows)
    await old.stop()
    client = await serve(Registry([V2]))
    assert await awaiting(db) == [Awaiting("backup", V1.version, 2)]

    body = {"from": V1.version, "to": V2.version, "dryRun": True}
    path = "/api/v1/workflow-definitions/backup/migrations"
    dry = await (await client.post(path, json=body)).json()
    assert dry["code"] == 0, dry
    assert sorted(f["workFlowId"] for f in dry["data"]["flows"] if f["outcome"] == "clean") == ids
    assert await awaiting(db) == [Awaiting("backup", V1.version, 2)]  # a dry run moves nothing
    applied = await (await client.post(path, json={**body, "dryRun": False})).json()
    assert applied["code"] == 0, applied
    assert {f["outcome"] for f in applied["data"]["flows"]} == {"migrated"}

    async def finished() -> bool:
        rows = await db.fetch("SELECT status FROM workflows WHERE id = ANY($1)", ids)
        return {row["status"] for row in rows} == {"Finished"}

    await _eventually(finished)
    assert await awaiting(db) == []
    for flow_id in ids:  # the new version's node ran: the flow went on under v2
        types = await db.fetch(
            "SELECT type, data FROM events WHERE stream_id = $1 ORDER BY version", f"flow-{flow_id}"
        )
        assert "FlowMigrated" in [row["type"] for row in types]
        assert any(row["type"] == "NodeStarted" and row["data"].get("name") == "check"
                   for row in types), types  # fmt: skip


async def test_the_periodic_check_logs_only_changes(
    start_engine: StartEngine, db: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flowlog.workflow.versions")
    old = await start_engine(V1)
    flow = await old.service.create("b", "db", "backup", context={"hold": 1}, start=True)
    await old.stop()
    new = await start_engine(V2)
    assert _said(caplog) == [WARNING]
    await new.awaiting.check()  # the same flows: nothing new to say
    assert _said(caplog) == [WARNING]
    again = await start_engine(V1)
    await wait_for_status(again.service, flow.flow_id, {FlowStatus.FINISHED})
    assert await new.awaiting.check() == []
    assert _said(caplog) == [
        WARNING,
        "no flow waits for a definition version any more",
    ]


async def test_a_flow_is_stranded_only_once_no_live_process_has_its_version(
    start_engine: StartEngine, db: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    old = await start_engine(V1)
    new = await start_engine(V2)
    flow = await old.service.create("b", "db", "backup", context={"hold": 600}, start=True)
    # Two processes, two versions: each flow has a process that can run it.
    assert await awaiting(db) == []
    assert await flow_awaits(db, flow.flow_id) is None
    await old.stop()  # a clean stop takes its versions away at once
    assert await awaiting(db) == [Awaiting("backup", V1.version, 1)]
    assert await flow_awaits(db, flow.flow_id) == V1.version

    # A process with v1 killed with SIGKILL: its versions count until its row lapses.
    worker = _worker(database_url, tmp_path)
    try:
        await _eventually(lambda: _empty(db))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        await _eventually(lambda: _stranded(db, [Awaiting("backup", V1.version, 1)]))
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
    assert new.reactor is not None  # v2 lived all along: a version, not a process, is missing


async def test_flows_on_a_task_queue_and_other_tenants_flows_are_not_reported(
    start_engine: StartEngine, db: asyncpg.Pool
) -> None:
    old = await start_engine(V1, REMOTE)
    queued = await old.service.create("q", "db", "remote", start=True)
    mine = await old.service.create("b", "db", "backup", context={"hold": 600}, start=True,
                                    tenant_id="tenant-a")  # fmt: skip

    async def offered() -> bool:
        row = await db.fetchrow("SELECT queue FROM flow_work WHERE flow_id = $1", queued.flow_id)
        return row is not None and row["queue"] is not None

    await _eventually(offered)
    await old.stop()
    await start_engine(V2)
    # A worker anywhere runs the queued node: not stranded, whatever the processes.
    assert await awaiting(db) == [Awaiting("backup", V1.version, 1)]
    assert await flow_awaits(db, queued.flow_id) is None
    assert await awaiting(db, "tenant-a") == [Awaiting("backup", V1.version, 1)]
    assert await awaiting(db, "tenant-b") == []
    assert [f.flow_id for f in await awaiting_flows(db, "tenant-b")] == []
    assert await flow_awaits(db, mine.flow_id) == V1.version


async def test_the_command_refuses_bad_usage(database_url: str) -> None:
    env = cli_env(DATABASE_URL=database_url, **QUIET)
    usages = (
        ("definitions",),
        ("definitions", "pending", "--limit", "0"),
        ("definitions", "pending", "--limit", "x" * 10_000),
        ("definitions", "nope"),
    )
    for args in usages:
        done = await asyncio.to_thread(run_flowlog, *args, env=env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
    empty = await asyncio.to_thread(run_flowlog, "definitions", "pending", "--json", env=env)
    assert empty.returncode == 0, empty.stderr
    assert orjson.loads(empty.stdout) == {"pending": [], "flows": [], "processes": []}


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flowlog.workflow.versions"]


async def _empty(pool: asyncpg.Pool) -> bool:
    return await awaiting(pool) == []


async def _stranded(pool: asyncpg.Pool, expected: list[Awaiting]) -> bool:
    return await awaiting(pool) == expected


def _worker(database_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "FLOWLOG_LEASE_SECONDS": "2",
           "FLOWLOG_LOG_LEVEL": "WARNING"}  # fmt: skip
    # The child keeps its own copy of the file: ours is closed at once.
    with (tmp_path / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flowlog.cli", "worker", "--definitions",
             "tests.upgrades.v1_defs"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
