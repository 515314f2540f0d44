"""Priority is recorded with a flow's creation, given by a schedule to its flows and by a
parent to its children, and written into the flow's work row."""

from __future__ import annotations

import asyncio

import asyncpg

from flowlog.engine import Engine
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.fanout import Children
from tests.engines import StartEngine
from tests.workflow.defs import noop

PRIORITIES = """
SELECT coalesce((data ->> 'priority')::int, 0) FROM events
WHERE type = 'FlowCreated' AND data ->> 'name' = $1 ORDER BY position
"""


def tick() -> WorkflowDefinition:
    return WorkflowDefinition("tick", {"start": NodeDefinition("tick", noop)})


def fan() -> WorkflowDefinition:
    return WorkflowDefinition("fan", {
        "start": NodeDefinition("each", kind=NodeKind.MAP,
                                children=Children(flow="tick", items="items")),
    })  # fmt: skip


async def until(pool: asyncpg.Pool, name: str, count: int) -> list[int]:
    for _ in range(200):
        found: list[int] = [r[0] for r in await pool.fetch(PRIORITIES, name)]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} flows of {name}")


async def test_a_schedule_s_flows_and_a_map_s_children_have_their_priority(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine: Engine = await start_engine(tick(), fan())
    spec = ScheduleSpec.model_validate({"flowName": "tick", "intervalSeconds": 1, "priority": 6,
                                        "overlap": "allow"})  # fmt: skip
    await engine.schedules.create("urgent-ticks", spec)
    assert set(await until(pool, "tick", 2)) == {6}
    await engine.schedules.delete("urgent-ticks")
    ticks = len(await until(pool, "tick", 0))

    parent = await engine.service.create("fan-1", "t", "fan", context={"items": [1, 2, 3]},
                                         start=True, priority=8)  # fmt: skip
    assert parent.priority == 8
    children = await until(pool, "tick", ticks + 3)
    assert children[-3:] == [8, 8, 8]
    # A spec without a priority is stored without one: its events and version stay the same.
    assert (
        "priority"
        not in ScheduleSpec.model_validate({"flowName": "tick", "cron": "* * * * *"}).model_dump()
    )
