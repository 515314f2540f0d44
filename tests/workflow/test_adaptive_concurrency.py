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


async def run_flows(engine: Engine, name: str, flows: int, apart: float = 0.0) -> None:
    """Creates ``flows`` flows, ``apart`` seconds from one to the next, and waits for them."""
    service = engine.service
    created = []
    for n in range(flows):
        created.append(await service.create(f"biz-{n}", "t", name, start=True))
        await asyncio.sleep(apart)
    for state in created:
        await wait_for_status(service, state.flow_id, {FlowStatus.FINISHED}, within=120)


async def test_slow_executors_get_more_flows_in_flight_than_the_limit_started_with(
    start_engine: StartEngine,
) -> None:
    running = Running()
    engine = await start_engine(counted_steps("sleepy", running, 0.2, nodes=2), settings=ADAPTIVE)
    assert engine.reactor is not None
    assert engine.reactor.limit.limit == ADAPTIVE.initial_concurrency

    # Started a few at a time, as clients do. Flows started all at once move in step: their
    # executors end together and their transitions share one group commit, so whenever a
    # transition ends most of the others are in one too, and the limit (which grows only
    # while most flows in flight are in their executors) reads them as waiting on the reactor.
    await run_flows(engine, "sleepy", 120, apart=0.01)

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
