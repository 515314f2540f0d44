"""The reactor's adaptive concurrency limit at work (app/workflow/concurrency_limit.py): slow
executors get more flows in flight than it started with, trivial ones keep it low. Asserted
on flows observed in flight, never on time."""

from __future__ import annotations

import asyncio
import dataclasses

from flowlog.engine import Engine
from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.state import FlowStatus
from tests.engines import FAST, StartEngine
from tests.workflow.helpers import wait_for_status

ADAPTIVE = dataclasses.replace(
    FAST, concurrency=None, initial_concurrency=4, min_concurrency=2, max_concurrency=1000
)


class Running:
    """Executors running at once: now and at most."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0


def two_steps(name: str, running: Running, seconds: float) -> WorkflowDefinition:
    async def step(node: NodeHandle, ctx: FlowContext) -> None:
        running.now += 1
        running.peak = max(running.peak, running.now)
        try:
            if seconds:
                await asyncio.sleep(seconds)
        finally:
            running.now -= 1

    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("one", step, success="two"),
            "two": NodeDefinition("two", step),
        },
    )


async def run_flows(engine: Engine, name: str, flows: int) -> None:
    service = engine.service
    created = await asyncio.gather(
        *(service.create(f"biz-{n}", "t", name, start=True) for n in range(flows))
    )
    for state in created:
        await wait_for_status(service, state.flow_id, {FlowStatus.FINISHED}, within=120)


async def test_slow_executors_get_more_flows_in_flight_than_the_limit_started_with(
    start_engine: StartEngine,
) -> None:
    running = Running()
    engine = await start_engine(two_steps("sleepy", running, 0.1), settings=ADAPTIVE)
    assert engine.reactor is not None
    assert engine.reactor.limit.limit == ADAPTIVE.initial_concurrency

    await run_flows(engine, "sleepy", 120)

    # Their transitions queue on nothing: the limit grew, and the reactor used it.
    assert running.peak > ADAPTIVE.initial_concurrency
    assert engine.reactor.limit.limit > ADAPTIVE.initial_concurrency


async def test_trivial_executors_keep_the_limit_low(start_engine: StartEngine) -> None:
    running = Running()
    settings = dataclasses.replace(ADAPTIVE, initial_concurrency=16)
    engine = await start_engine(two_steps("quick", running, 0.0), settings=settings)
    assert engine.reactor is not None
    highest = 0

    async def watch() -> None:
        nonlocal highest
        while True:
            highest = max(highest, engine.reactor.limit.limit if engine.reactor else 0)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        await run_flows(engine, "quick", 400)
    finally:
        watcher.cancel()

    # Every flow is always in a transition: more in flight only queue, and the limit stays
    # far below its ceiling (slow executors take it to hundreds: the test above).
    assert engine.reactor.limit.limit <= 100
    assert highest <= 200 < settings.max_concurrency
