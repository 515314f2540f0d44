"""``flowlog flows`` on a tree in a terminal: a parent's children under its nodes, a child's
parent, and the list of a flow's children."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from flowlog.workflow.state import FlowStatus
from tests.children.defs import ALL
from tests.engines import StartEngine
from tests.helpers import cli_env, run_flowlog
from tests.workflow.helpers import wait_for_status

pytestmark = pytest.mark.slow


async def test_flows_show_draws_the_tree_and_list_takes_a_parent(
    start_engine: StartEngine, database_url: str, runtime_url: str
) -> None:
    service = (await start_engine(*ALL)).service
    env = cli_env(DATABASE_URL=runtime_url, FLOWLOG_OWNER_URL=database_url)
    fleet = await service.create("fleet", "t", "backup-fleet",
                                 context={"clusters": ["a", "b", "c"]}, start=True)  # fmt: skip
    await wait_for_status(service, fleet.flow_id, {FlowStatus.FINISHED})

    shown = await asyncio.to_thread(run_flowlog, "flows", "show", fleet.flow_id, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert (
        "backupEach (map): 3 of 3 finished, 0 failed, 0 canceled, 0 running, 0 not started" in lines
    )
    assert f"  (flowlog flows list --parent {fleet.flow_id})" in lines
    lanes = [line.split() for line in lines if line.startswith(("  verify", "  report"))]
    assert [(lane[0], lane[1], lane[3:]) for lane in lanes] == [
        ("verify", "Finished", ["verify", "Finished"]),
        ("report", "Finished", ["report", "Finished"]),
    ]

    listed = await asyncio.to_thread(run_flowlog, "flows", "list", "--parent", fleet.flow_id,
                                     "--json", env=env)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    children = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert len(children) == 5
    assert {c["parentFlowId"] for c in children} == {fleet.flow_id}

    child = next(c for c in children if c.get("branch") == "report")
    shown = await asyncio.to_thread(run_flowlog, "flows", "show", child["id"], env=env)
    assert f"parent   {fleet.flow_id} (child 1, branch report)" in shown.stdout.splitlines()
