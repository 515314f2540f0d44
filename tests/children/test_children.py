"""Map, parallel and subflow nodes on a real PostgreSQL with the reactor running: children
are flows of their own, their ends are counted once, and the parent's stop, start, cancel
and retry reach them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from flowlog.workflow.errors import Code
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState, FlowStatus
from flowlog.workflow.streams import flow_stream
from tests.api.helpers import wait_for
from tests.children.defs import ALL, NESTED
from tests.engines import StartEngine
from tests.workflow.helpers import wait_for_status

ENDED = {FlowStatus.FINISHED, FlowStatus.ERROR, FlowStatus.CANCELED}
CLUSTERS = ["c1", "c2", "c3", "c4", "c5"]
CHILDREN = """SELECT id, child_index, branch, status, parent_node_id FROM workflows
              WHERE parent_id = $1 ORDER BY parent_node_id, child_index"""


async def has(count: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await count() == expected


async def types_of(service: WorkflowService, flow_id: str) -> list[str]:
    return [e.type for e in await service.store.read_stream(flow_stream(flow_id))]


async def finished(service: WorkflowService, flow_id: str) -> FlowState:
    return await wait_for_status(service, flow_id, ENDED, within=30)


async def test_a_fleet_backup_runs_a_child_per_cluster_then_two_branches(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL)).service
    flow = await service.create("fleet-1", "backup", "backup-fleet",
                                context={"clusters": CLUSTERS}, start=True)  # fmt: skip
    done = await finished(service, flow.flow_id)
    assert done.status is FlowStatus.FINISHED, done
    assert done.context["backups"] == [f"backup-of-{c}" for c in CLUSTERS]
    # The branches' changes are the parent's: both ran, side by side, on its context.
    assert done.context["verified"] == len(CLUSTERS)
    assert done.context["reported"] is True
    rows = await pool.fetch(CHILDREN, flow.flow_id)
    maps = [r for r in rows if r["branch"] is None]
    assert [r["child_index"] for r in maps] == list(range(len(CLUSTERS)))
    assert {r["status"] for r in rows} == {"Finished"}
    assert sorted(r["branch"] for r in rows if r["branch"]) == ["report", "verify"]
    for row in maps:
        child = await service.get(row["id"])
        assert child.biz_id == f"fleet-1/{row['child_index']}"
        assert child.context["clusterId"] == CLUSTERS[row["child_index"]]
        assert "clusters" not in child.context  # the list is not copied into every child
        assert child.parent is not None
        assert child.parent.flow_id == flow.flow_id
    # Well under two events per child in the parent's stream.
    types = await types_of(service, flow.flow_id)
    assert types.count("ChildrenStarted") + types.count("ChildrenEnded") <= 2 * len(CLUSTERS)
    assert types[-1] == "FlowFinished"


async def test_a_failing_child_fails_the_map_and_a_retry_with_a_patch_reruns_only_it(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL)).service
    flow = await service.create("fleet-2", "backup", "backup-fleet",
                                context={"clusters": CLUSTERS, "failFor": ["c3"]},
                                start=True)  # fmt: skip
    failed = await finished(service, flow.flow_id)
    assert failed.status is FlowStatus.ERROR
    assert failed.error_code == Code.CHILDREN_FAILED
    assert "1 of 5 children failed (0 tolerated): indexes 2" in (failed.error_message or "")
    rows = {r["child_index"]: r for r in await pool.fetch(CHILDREN, flow.flow_id)}
    assert rows[2]["status"] == "Error"
    versions = {i: (await service.get(r["id"])).version for i, r in rows.items()}

    await service.retry(flow.flow_id, {"failFor": []})
    done = await finished(service, flow.flow_id)
    assert done.status is FlowStatus.FINISHED, done
    assert done.context["backups"] == [f"backup-of-{c}" for c in CLUSTERS]
    after = {r["child_index"]: r for r in await pool.fetch(CHILDREN, flow.flow_id)
             if r["branch"] is None}  # fmt: skip
    # The failed child ran again; the map had stopped starting children at the failure, so
    # those it had not started yet start now; none of the others ran again.
    assert set(rows) <= set(after)
    assert set(after) == set(range(len(CLUSTERS)))
    for index, row in after.items():
        child = await service.get(row["id"])
        assert child.status is FlowStatus.FINISHED
        if index != 2 and index in versions:
            assert child.version == versions[index]  # untouched
    retried = await service.get(after[2]["id"])
    assert "FlowRetried" in await types_of(service, retried.flow_id)
    assert retried.context["failFor"] == []


async def test_cancel_of_the_parent_cancels_every_child(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL)).service
    flow = await service.create("hold-1", "t", "holders",
                                context={"items": [1, 2, 3, 4, 5]}, start=True)  # fmt: skip

    async def waiting() -> int:
        return len(await pool.fetch(CHILDREN, flow.flow_id))

    await wait_for(lambda: has(waiting, 3), within=20)
    await service.cancel(flow.flow_id, "not needed")
    canceled = await finished(service, flow.flow_id)
    assert canceled.status is FlowStatus.CANCELED
    for row in await pool.fetch(CHILDREN, flow.flow_id):
        child = await finished(service, row["id"])
        assert child.status is FlowStatus.CANCELED
    assert len(await pool.fetch(CHILDREN, flow.flow_id)) == 3  # no child started after


async def test_stop_of_the_parent_stops_its_children_and_start_resumes_them(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL)).service
    flow = await service.create("hold-2", "t", "holders",
                                context={"items": [1, 2]}, start=True)  # fmt: skip

    async def count() -> int:
        return len(await pool.fetch(CHILDREN, flow.flow_id))

    await wait_for(lambda: has(count, 2), within=20)
    await service.stop(flow.flow_id, "maintenance")

    async def stopped() -> int:
        rows = await pool.fetch(CHILDREN, flow.flow_id)
        return sum(r["status"] == "Stopped" for r in rows)

    await wait_for(lambda: has(stopped, 2), within=20)
    await service.start(flow.flow_id)

    async def running() -> int:
        rows = await pool.fetch(CHILDREN, flow.flow_id)
        return sum(r["status"] == "Processing" for r in rows)

    await wait_for(lambda: has(running, 2), within=20)
    parent = await service.get(flow.flow_id)
    assert parent.status is FlowStatus.PROCESSING


async def test_a_subflow_node_waits_for_its_child_and_takes_its_context(
    start_engine: StartEngine,
) -> None:
    service = (await start_engine(*ALL)).service
    flow = await service.create("one", "backup", "one-backup", start=True)
    done = await finished(service, flow.flow_id)
    assert done.status is FlowStatus.FINISHED, done
    assert done.context["backup"]["backedUp"] == "backup-of-c-main"


async def test_a_map_over_no_list_fails_and_over_an_empty_list_succeeds(
    start_engine: StartEngine,
) -> None:
    service = (await start_engine(*ALL)).service
    missing = await service.create("m", "t", "holders", start=True)
    failed = await finished(service, missing.flow_id)
    assert failed.status is FlowStatus.ERROR
    assert failed.error_code == Code.CHILDREN_NOT_STARTED
    assert "'items' is not a list (missing)" in (failed.error_message or "")
    empty = await service.create("e", "t", "holders", context={"items": []}, start=True)
    done = await finished(service, empty.flow_id)
    assert done.status is FlowStatus.FINISHED


async def test_two_reactors_count_every_end_once_and_start_every_child_once(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    first = (await start_engine(*ALL)).service
    await start_engine(*ALL)
    clusters = [f"c{i}" for i in range(12)]
    flows = [
        await first.create(
            f"fleet-{n}", "backup", "backup-fleet", context={"clusters": clusters}, start=True
        )
        for n in range(12)
    ]
    for flow in flows:
        done = await finished(first, flow.flow_id)
        assert done.status is FlowStatus.FINISHED, done
        assert done.context["backups"] == [f"backup-of-{c}" for c in clusters]
        counted: list[int] = []
        for event in await first.store.read_stream(flow_stream(flow.flow_id)):
            if event.type == "ChildrenEnded" and event.data["node_id"] == done.nodes[1].node_id:
                counted += [index for index, _ in event.data["ended"]]
        assert sorted(counted) == list(range(len(clusters)))  # each end counted once
        rows = await pool.fetch(CHILDREN, flow.flow_id)
        assert len(rows) == len(clusters) + 2  # each child made once (and two branches)


async def test_cancel_of_the_root_cancels_a_tree_three_flows_deep(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL, NESTED)).service
    flow = await service.create("deep", "t", "nested",
                                context={"groups": [[1, 2], [3]]}, start=True)  # fmt: skip
    grandchildren = """SELECT g.id FROM workflows c JOIN workflows g ON g.parent_id = c.id
                       WHERE c.parent_id = $1"""

    async def all_started() -> int:
        return len(await pool.fetch(grandchildren, flow.flow_id))

    await wait_for(lambda: has(all_started, 3), within=20)
    await service.cancel(flow.flow_id, "not needed")
    assert (await finished(service, flow.flow_id)).status is FlowStatus.CANCELED
    for row in [*await pool.fetch(CHILDREN, flow.flow_id),
                *await pool.fetch(grandchildren, flow.flow_id)]:  # fmt: skip
        assert (await finished(service, row["id"])).status is FlowStatus.CANCELED


async def test_a_map_over_more_than_ten_thousand_elements_starts_none(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    service = (await start_engine(*ALL)).service
    flow = await service.create("big", "t", "holders",
                                context={"items": list(range(10_001))}, start=True)  # fmt: skip
    failed = await finished(service, flow.flow_id)
    assert failed.error_code == Code.CHILDREN_NOT_STARTED
    assert "has 10001 elements (at most 10000)" in (failed.error_message or "")
    assert await pool.fetch(CHILDREN, flow.flow_id) == []
