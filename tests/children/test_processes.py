"""Children under several reactor processes and ``kill -9``: every child is made once, every
end is counted once, every join happens once, and no flow of the tree is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowlog.engine import Engine
from flowlog.workflow.errors import Code
from tests.processes import Workers, histories, kill_a_worker_after, others
from tests.workflow.helpers import assert_clean_history

pytestmark = pytest.mark.slow

ITEMS = 16
FLEETS = 12
FLEETS_FINISHED = """
SELECT count(*) FROM events e JOIN workflows w ON 'flow-' || w.id = e.stream_id
WHERE e.type = 'FlowFinished' AND w.name = 'fleet' AND w.parent_id IS NULL
"""
ENDS_COUNTED = "SELECT count(*) FROM events WHERE type = 'ChildrenEnded'"


async def test_fleets_survive_a_worker_killed_with_sigkill_and_count_every_end_once(
    database_url: str, runs_dir: Path, workers_factory: list[Workers], api: Engine
) -> None:
    workers = Workers(database_url, runs_dir, sleep_ms="10-40")
    workers_factory.append(workers)
    workers.start(3)
    items = list(range(ITEMS))
    fleets = [
        (
            await api.service.create(
                f"fleet-{n}", "test", "fleet", context={"items": items}, start=True
            )
        ).flow_id
        for n in range(FLEETS)
    ]
    victim = await kill_a_worker_after(api.pool, workers, count=10, progress=ENDS_COUNTED)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while (done := await api.pool.fetchval(FLEETS_FINISHED)) < FLEETS:
        assert loop.time() < deadline, f"only {done} of {FLEETS} fleets finished"
        await asyncio.sleep(0.2)
    assert others(workers.stop_all(), victim) == [0, 0]

    stored = await histories(api.pool)
    for flow_id in fleets:
        history = stored[flow_id]
        assert history[-1][0] == "FlowFinished"
        map_node = next(d["node_id"] for t, d in history if t == "NodeStarted")
        counted = [i for t, d in history if t == "ChildrenEnded" and d["node_id"] == map_node
                   for i, _ in d["ended"]]  # fmt: skip
        assert sorted(counted) == items  # each end counted once
        started = [(d["first"], d["count"]) for t, d in history
                   if t == "ChildrenStarted" and d["node_id"] == map_node]  # fmt: skip
        assert sorted(i for first, count in started for i in range(first, first + count)) == items
        joins = [t for t, _ in history if t == "NodeSucceeded"]
        assert len(joins) == 3  # the map, the parallel node, the end: each once
        state = await api.service.get(flow_id)
        assert state.context["results"] == items
    children = await api.pool.fetch("SELECT parent_id, count(*) FROM workflows "
                                    "WHERE parent_id IS NOT NULL GROUP BY parent_id")  # fmt: skip
    assert {r["parent_id"]: r["count"] for r in children} == dict.fromkeys(fleets, ITEMS + 2)
    interrupted = 0
    for history in stored.values():
        assert_clean_history(history)
        assert history[-1][0] == "FlowFinished"
        interrupted += sum(t == "NodeFailed" and d["error_code"] == Code.NODE_INTERRUPTED
                           for t, d in history)  # fmt: skip
    assert interrupted, "the kill interrupted no node: the test did not test anything"
