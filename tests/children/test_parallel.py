"""Parallel nodes' joins: all, any, at least N; a branch that fails for good fails the node at
once (the others canceled) or, with onBranchFailure "wait", once every branch ended; and a
retry runs only the failed branches again."""

from __future__ import annotations

import asyncio

import asyncpg

from flowlog.engine import Engine
from flowlog.workflow.errors import Code
from flowlog.workflow.service import Completion, WorkflowService
from flowlog.workflow.state import FlowState, FlowStatus
from tests.api.helpers import wait_for
from tests.children.defs import ALL, PARALLELS
from tests.engines import StartEngine
from tests.workflow.helpers import wait_for_status

ENDED = {FlowStatus.FINISHED, FlowStatus.ERROR, FlowStatus.CANCELED}
BRANCHES = "SELECT branch, id, status FROM workflows WHERE parent_id = $1 ORDER BY child_index"


async def engine_of(start_engine: StartEngine) -> Engine:
    return await start_engine(*ALL, *PARALLELS)


async def branch_states(pool: asyncpg.Pool, flow_id: str) -> dict[str, str]:
    return {r["branch"]: r["status"] for r in await pool.fetch(BRANCHES, flow_id)}


async def slow_waiting(service: WorkflowService, pool: asyncpg.Pool, flow_id: str) -> str:
    """The slow branch's flow id, once it waits for its callback."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        rows = {r["branch"]: r["id"] for r in await pool.fetch(BRANCHES, flow_id)}
        if "slow" in rows:
            running = (await service.get(rows["slow"])).running_node
            if running is not None and running.waiting:
                return rows["slow"]
        assert loop.time() < deadline
        await asyncio.sleep(0.02)


async def complete_slow(service: WorkflowService, slow: str) -> None:
    running = (await service.get(slow)).running_node
    assert running is not None
    await service.complete_callback(
        Completion(succeeded=True, flow_id=slow, node_id=running.node_id)
    )


async def ended(service: WorkflowService, flow_id: str) -> FlowState:
    return await wait_for_status(service, flow_id, ENDED, within=30)


async def test_join_all_waits_for_every_branch_and_merges_their_changes(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await engine_of(start_engine)).service
    flow = await service.create("p", "t", "all-join", start=True)
    await complete_slow(service, await slow_waiting(service, pool, flow.flow_id))
    done = await ended(service, flow.flow_id)
    assert done.status is FlowStatus.FINISHED, done
    assert done.context["quickDone"] is True
    assert done.context["fragileDone"] is True
    assert await branch_states(pool, flow.flow_id) == dict.fromkeys(
        ("quick", "fragile", "slow"), "Finished")  # fmt: skip


async def test_join_any_takes_the_first_branch_and_cancels_the_others(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await engine_of(start_engine)).service
    flow = await service.create("p", "t", "any-join", context={"broken": True}, start=True)
    done = await ended(service, flow.flow_id)
    assert done.status is FlowStatus.FINISHED, done
    states = await branch_states(pool, flow.flow_id)
    assert states["quick"] == "Finished"
    assert states["fragile"] == "Error"

    async def slow_canceled() -> bool:
        return (await branch_states(pool, flow.flow_id))["slow"] == "Canceled"

    await wait_for(slow_canceled)


async def test_a_broken_branch_fails_the_node_at_once_and_a_retry_reruns_only_it(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await engine_of(start_engine)).service
    flow = await service.create("p", "t", "all-join", context={"broken": True}, start=True)
    failed = await ended(service, flow.flow_id)
    assert failed.status is FlowStatus.ERROR
    assert failed.error_code == Code.CHILDREN_FAILED
    assert "branches failed: fragile" in (failed.error_message or "")
    states = await branch_states(pool, flow.flow_id)
    assert states["fragile"] == "Error"
    ids = {r["branch"]: r["id"] for r in await pool.fetch(BRANCHES, flow.flow_id)}
    for branch in ("slow",):  # canceled: the node no longer needed it
        assert (await ended(service, ids[branch])).status is FlowStatus.CANCELED
    quick_version = (await service.get(ids["quick"])).version

    await service.retry(flow.flow_id, {"broken": False})
    # The slow branch was canceled (a failure too): it runs again, and waits again.
    await complete_slow(service, await slow_waiting(service, pool, flow.flow_id))
    done = await ended(service, flow.flow_id)
    assert done.status is FlowStatus.FINISHED, done
    assert (await service.get(ids["quick"])).version == quick_version  # not run again
    assert len(await pool.fetch(BRANCHES, flow.flow_id)) == 3  # no new branch flows
    fragile = await service.get(ids["fragile"])
    assert fragile.status is FlowStatus.FINISHED
    assert fragile.context["broken"] is False  # the patch reached the branch


async def test_on_branch_failure_wait_decides_once_every_branch_ended(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await engine_of(start_engine)).service
    flow = await service.create("p", "t", "wait-join", context={"broken": True}, start=True)
    slow = await slow_waiting(service, pool, flow.flow_id)

    async def fragile_failed() -> bool:
        return (await branch_states(pool, flow.flow_id)).get("fragile") == "Error"

    await wait_for(fragile_failed)
    await asyncio.sleep(0.5)
    assert (await service.get(flow.flow_id)).status is FlowStatus.PROCESSING  # still waiting
    await complete_slow(service, slow)
    failed = await ended(service, flow.flow_id)
    assert failed.status is FlowStatus.ERROR
    assert failed.error_code == Code.CHILDREN_FAILED


async def test_at_least_two_of_three_succeeds_without_the_slow_branch(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await engine_of(start_engine)).service
    flow = await service.create("p", "t", "two-of-three", start=True)
    done = await ended(service, flow.flow_id)
    assert done.status is FlowStatus.FINISHED, done
    states = await branch_states(pool, flow.flow_id)
    assert states["quick"] == states["fragile"] == "Finished"
