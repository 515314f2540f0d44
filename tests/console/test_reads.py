"""What the flows page reads beside the list, on a real PostgreSQL with the reactor running:
the node each flow is at (for a flow in Error, the failure that ended it), what a waiting node
waits for and since when, and the flows that wait, paged as the list pages."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from flowlog.console.present import Waiting
from flowlog.console.reads import current_nodes, waiting_flows
from flowlog.engine import Engine
from flowlog.projections.reads import Cursor, ListFilter, get_workflow
from flowlog.projections.rows import WorkflowRow
from flowlog.workflow.definition import NodeDefinition, RetryPolicy, WorkflowDefinition
from flowlog.workflow.errors import NodeError
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.state import FlowStatus
from flowlog.workflow.streams import flow_stream
from tests.engines import StartEngine
from tests.workflow.defs import noop
from tests.workflow.helpers import wait_for_status

ENDED = {FlowStatus.FINISHED, FlowStatus.ERROR}


async def boom(node: NodeHandle, ctx: FlowContext) -> None:
    raise NodeError(f"{node.name} failed", code=7001)


async def first_attempt_fails(node: NodeHandle, ctx: FlowContext) -> None:
    if node.attempt == 1:
        raise NodeError("the clean-up store was busy", code=7002)


async def one_hour(node: NodeHandle, ctx: FlowContext) -> timedelta:
    return timedelta(hours=1)


class Held:
    """A callback node's action that runs until the test lets it go: the node does not wait
    (for anyone) while its action runs."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def describe(self) -> dict[str, str]:
        return {"executor": "held"}

    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> None:
        self.entered.set()
        await self.release.wait()


def failing(name: str, handler: NodeDefinition) -> WorkflowDefinition:
    """upload (tried twice, fails each time) -> its fail handler ``cleanUp``."""
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("upload", boom, fail="fail",
                                    retry=RetryPolicy(max_attempts=2, initial_interval=0.05)),
            "fail": handler,
        },
    )  # fmt: skip


def approval(name: str, action: object = noop) -> WorkflowDefinition:
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("prepare", noop, success="approve"),
            "approve": NodeDefinition("approval", action, kind="callback", deadline=86400,
                                      success="apply"),
            "apply": NodeDefinition("apply", noop),
        },
    )  # fmt: skip


TIMER = WorkflowDefinition(
    "cool-down",
    {
        "start": NodeDefinition("coolDown", one_hour, kind="timer", success="end"),
        "end": NodeDefinition("end", noop),
    },
)


async def rows(engine: Engine, *flow_ids: str) -> list[WorkflowRow]:
    found = [await get_workflow(engine.pool, flow_id) for flow_id in flow_ids]
    assert all(row is not None for row in found)
    return [row for row in found if row is not None]


async def until_waiting(engine: Engine, flow_id: str) -> None:
    for _ in range(2000):
        running = (await engine.service.get(flow_id)).running_node
        if running is not None and running.waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{flow_id} never waited")


async def test_a_flow_in_error_is_at_the_failure_that_ended_it(start_engine: StartEngine) -> None:
    engine = await start_engine(
        failing("plain", NodeDefinition("cleanUp", noop)),
        # The fail handler itself failed once and was retried: its retried attempt is not
        # what ended the flow.
        failing("shaky", NodeDefinition("cleanUp", first_attempt_fails,
                                        retry=RetryPolicy(max_attempts=2, initial_interval=0.05))),
        approval("approval"),
    )  # fmt: skip
    service = engine.service
    plain = (await service.create("b1", "t", "plain", start=True)).flow_id
    shaky = (await service.create("b2", "t", "shaky", start=True)).flow_id
    fine = (await service.create("b3", "t", "approval", start=True)).flow_id
    for flow_id in (plain, shaky):
        assert (await wait_for_status(service, flow_id, ENDED)).status is FlowStatus.ERROR
    await until_waiting(engine, fine)
    shaky_nodes = [(n.name, n.status.value) for n in (await service.get(shaky)).nodes]
    assert shaky_nodes == [("upload", "Error"), ("upload", "Error"),
                           ("cleanUp", "Error"), ("cleanUp", "Finished")]  # fmt: skip

    current = await current_nodes(engine.pool, await rows(engine, plain, shaky, fine))
    assert {k: (v.name, v.status) for k, v in current.items()} == {
        plain: ("upload", "Error"),
        shaky: ("upload", "Error"),
        fine: ("approval", "Processing"),
    }


async def test_waiting_nodes_say_what_for_and_since_when(start_engine: StartEngine) -> None:
    held = Held()
    engine = await start_engine(approval("approval"), approval("held", held), TIMER)
    service = engine.service
    asked = (await service.create("b1", "t", "approval", start=True)).flow_id
    timer = (await service.create("b2", "t", "cool-down", start=True)).flow_id
    running = (await service.create("b3", "t", "held", start=True)).flow_id
    await until_waiting(engine, asked)
    await until_waiting(engine, timer)
    await asyncio.wait_for(held.entered.wait(), 20)

    recorded = {
        flow_id: next(
            e for e in await service.store.read_stream(flow_stream(flow_id))
            if e.type == "NodeWaiting"
        )
        for flow_id in (asked, timer)
    }  # fmt: skip
    current = await current_nodes(engine.pool, await rows(engine, asked, timer, running))
    since = recorded[asked].recorded_at
    assert current[asked].waiting == Waiting(
        "approval", "callback", since=since, deadline=(await service.get(asked)).nodes[-1].deadline
    )
    assert current[asked].waiting is not None
    assert current[asked].waiting.deadline is not None
    assert abs(current[asked].waiting.deadline - since - timedelta(days=1)) < timedelta(seconds=5)
    wake_at = (await service.get(timer)).nodes[-1].wake_at
    assert wake_at is not None
    assert current[timer].waiting == Waiting(
        "coolDown", "timer", since=recorded[timer].recorded_at, wake_at=wake_at
    )
    # A callback node whose action still runs waits for no one yet.
    assert (current[running].name, current[running].waiting) == ("approval", None)
    held.release.set()
    await until_waiting(engine, running)


async def test_the_flows_that_wait_page_as_the_list_does(start_engine: StartEngine) -> None:
    held = Held()
    engine = await start_engine(approval("approval"), approval("held", held), TIMER)
    service = engine.service
    asked = [
        (await service.create(f"a{i}", "t", "approval", start=True, tenant_id=tenant)).flow_id
        for i, tenant in enumerate(["t1", "t1", "t2"])
    ]
    timer = (await service.create("c", "t", "cool-down", start=True, tenant_id="t1")).flow_id
    canceled = (await service.create("d", "t", "approval", start=True, tenant_id="t1")).flow_id
    for flow_id in [*asked, timer, canceled]:
        await until_waiting(engine, flow_id)
    await service.create("e", "t", "held", start=True, tenant_id="t1")
    await asyncio.wait_for(held.entered.wait(), 20)
    await service.cancel(canceled, "not needed")
    await wait_for_status(service, canceled, {FlowStatus.CANCELED})
    await service.stop(asked[0], "a maintenance window")  # still waits for its approval

    async def listed(where: ListFilter, size: int = 10, after: Cursor | None = None) -> Any:
        return await waiting_flows(
            engine.pool, where, "callback", page=1, page_size=size, after=after
        )

    everything = await listed(ListFilter())
    assert [r.id for r in everything.rows] == list(reversed(asked))
    assert everything.total == 3
    assert everything.next_cursor is None
    first = await listed(ListFilter(tenant_id="t1"), size=1)
    assert ([r.id for r in first.rows], first.total) == ([asked[1]], 2)
    assert first.next_cursor is not None
    second = await listed(ListFilter(tenant_id="t1"), 1, Cursor.decode(first.next_cursor))
    assert ([r.id for r in second.rows], second.total) == ([asked[0]], 2)
    stopped = await listed(ListFilter(status="Stopped"))
    assert [r.id for r in stopped.rows] == [asked[0]]
    assert stopped.rows[0] == (await rows(engine, asked[0]))[0]  # the list's own row
    nothing = await listed(ListFilter(biz_id="nobody"))
    assert (nothing.rows, nothing.total, nothing.next_cursor) == ([], 0, None)
    timers = await waiting_flows(
        engine.pool, ListFilter(), "timer", page=1, page_size=10, after=None
    )
    assert ([r.id for r in timers.rows], timers.total) == ([timer], 1)
    held.release.set()
