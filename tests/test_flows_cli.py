"""``flowlog flows`` in a terminal: on the database, and through a server (``--api``), with
the exit statuses scripts test."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import orjson
import pytest

from flowlog.bench.harness import serve_process
from flowlog.engine import Engine
from flowlog.workflow.state import FlowStatus
from tests.api.conftest import fussy_flow
from tests.engines import StartEngine
from tests.helpers import cli_env, refused_port, run_flowlog
from tests.workflow.defs import backup_flow
from tests.workflow.helpers import wait_for_status

pytestmark = pytest.mark.slow


async def flows(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_flowlog, "flows", *args, env=env)


@pytest.fixture
async def engine(start_engine: StartEngine) -> Engine:
    return await start_engine(backup_flow(), fussy_flow())


async def test_flows_on_the_database(engine: Engine, database_url: str, runtime_url: str) -> None:
    env = cli_env(DATABASE_URL=runtime_url, FLOWLOG_OWNER_URL=database_url)
    service = engine.service
    waiting = (await service.create("c-1", "cluster", "backup")).flow_id
    failing = (await service.create("c-2", "cluster", "fussy", start=True)).flow_id
    await wait_for_status(service, failing, {FlowStatus.ERROR})

    listed = await flows(env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {orjson.loads(line)["id"] for line in listed.stdout.splitlines()} == {waiting, failing}
    table = await flows(env, "list", "--status", "Error")
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert failing in table.stdout
    assert waiting not in table.stdout

    shown = await flows(env, "show", failing)
    assert shown.returncode == 0, shown.stderr
    assert "status   Error" in shown.stdout
    assert "7001 ok is not set" in shown.stdout  # the node's error, in its row

    started = await flows(env, "start", waiting, "--reason", "go")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"start: {waiting} is Processing"
    followed = await flows(env, "follow", waiting)
    assert followed.returncode == 0, followed.stderr  # it finished
    kinds = [line.split()[3] for line in followed.stdout.splitlines()]
    assert kinds[0] == "FlowCreated"
    assert kinds[-1] == "FlowFinished"
    history = await service.store.read_stream(f"flow-{waiting}")
    assert history[1].metadata["reason"] == "go"
    assert "@" in history[1].metadata["actor"]  # the person at the terminal, and where

    again = await flows(env, "start", waiting)
    assert again.returncode == 1  # refused: the flow has ended
    assert "40103" in again.stderr
    retried = await flows(env, "retry", failing, "--set", "ok=true", "--json")
    assert retried.returncode == 0, retried.stderr
    assert orjson.loads(retried.stdout)["status"] == "Processing"
    assert (await flows(env, "follow", failing)).returncode == 0
    assert (await service.get(failing)).context["ok"] is True

    other = (await service.create("c-3", "cluster", "backup")).flow_id
    assert (await flows(env, "cancel", other, "--reason", "not needed")).returncode == 0
    assert (await flows(env, "follow", other)).returncode == 1  # it ended Canceled

    assert (await flows(env, "show", str(uuid.uuid4()))).returncode == 3
    malformed = await flows(env, "show", "no-such-flow")
    assert malformed.returncode == 2  # no flow could have it: not "does not exist"
    assert "not a flow id" in malformed.stderr
    assert (await flows(env, "show")).returncode == 2
    assert (await flows(env, "start", waiting, "--set", "a=1")).returncode == 2


async def test_flows_through_a_server(engine: Engine, database_url: str) -> None:
    flow_id = (await engine.service.create("c-9", "cluster", "backup", tenant_id="a")).flow_id
    env = {"FLOWLOG_TOKENS": "alice:secret-a:a"}
    async with serve_process(database_url, "--no-reactor", env=env) as base:
        cli = cli_env()
        api = ["--api", base, "--token", "secret-a"]
        listed = await flows(cli, "list", *api, "--json")
        assert listed.returncode == 0, listed.stderr
        assert [orjson.loads(line)["id"] for line in listed.stdout.splitlines()] == [flow_id]
        shown = await flows(cli, "show", flow_id, *api, "--json")
        assert orjson.loads(shown.stdout)["info"]["status"] == "Initializing"
        stopped = await flows(cli, "start", flow_id, *api)
        assert stopped.returncode == 0, stopped.stderr
        followed = await flows(cli, "follow", flow_id, *api, "--json")
        assert followed.returncode == 0, followed.stderr
        assert orjson.loads(followed.stdout.splitlines()[-1])["type"] == "FlowFinished"
        denied = await flows(cli, "list", "--api", base, "--token", "wrong")
        assert denied.returncode == 1
        assert "40118" in denied.stderr
    with refused_port() as port:
        gone = await flows(cli, "list", "--api", f"http://127.0.0.1:{port}")
    assert gone.returncode == 4
