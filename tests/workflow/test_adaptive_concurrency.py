"""The reactor's adaptive concurrency limit at work (app/workflow/concurrency_limit.py): slow
executors get more flows in flight than it started with, trivial ones keep it low. Asserted
on flows observed in flight, never on time."""

from __future__ import annotations

import asyncio
import dataclasses

from flowlog.bench.slow_flows import Running, counted_steps
from flowlog.engine import Engine
from flowlog.workflow.state import FlowStatus
from tests.engines import FAST, StartEngine
from tests.workflow.helpers import wait_for_status

ADAPTIVE = dataclasses.replace(
    FAST, concurrency=None, initial_concurrency=4, min_concurrency=2, max_concurrency=1000
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
    engine = await start_engine(counted_steps("sleepy", running, 0.2, nodes=2), settings=ADAPTIVE)
    assert engine.reactor is not None
    assert engine.reactor.limit.limit == ADAPTIVE.initial_concurrency

    await run_flows(engine, "sleepy", 120)

    # Their transitions queue on nothing: the limit grew, and the reactor used it.
    assert running.peak > ADAPTIVE.initial_concurrency
    assert engine.reactor.limit.limit > ADAPTIVE.initial_concurrency


async def test_trivial_executors_keep_the_limit_low(start_engine: StartEngine) -> None:
    running = Running()
    settings = dataclasses.replace(ADAPTIVE, initial_concurrency=16)
    engine = await start_engine(counted_steps("quick", running, 0.0, nodes=2), settings=settings)
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
