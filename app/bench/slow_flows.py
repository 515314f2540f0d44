"""The slow-executor phase of ``flowlog bench flows``: every node sleeps 200 ms.

What the adaptive concurrency limit is for (app/workflow/concurrency_limit.py): executors that
wait (an HTTP call, a sleep) queue on nothing of the reactor's, so the limit grows while the
transitions stay fast, and flows per second follow the executors' time (by Little's law, flows
in flight / 0.6 s a flow), where a fixed 32 capped them at 32 / 0.6 = 53 a second. The engine
runs at its default settings, in a scratch database of its own. Measured:

- ``slow_flows_per_s``: N / (first create -> last flow Finished);
- ``slow_concurrency_limit``: the limit the reactor settled on (at the end of the run, as the
  last flows drain); ``slow_peak_concurrency_limit`` / ``slow_mean_concurrency_limit``: the
  highest and the mean over the run (every 50 ms);
- ``slow_peak_executors`` / ``slow_mean_executors``: executors running at once, at most and on
  average over the run (counted by the executors themselves, every 50 ms);
- ``slow_flows_per_s_by_executors``: the mean executors running / the 0.2 s each takes / 3
  nodes a flow: the rate the executors' own time allows at that concurrency;
- ``slow_fixed_32_flows_per_s``: what the fixed limit of 32 allowed (32 / 0.6 s).
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from flowlog.bench.flow_clients import create_and_finish
from flowlog.bench.harness import scratch_database
from flowlog.bench.size import Size
from flowlog.engine import Engine
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.reactor_settings import ReactorSettings

NODE_SECONDS = 0.2
NODES = 3
QUICK_FLOWS, FULL_FLOWS, SMOKE_FLOWS = 2000, 6000, 20
FLOW_NAME = "bench-three-slow-steps"
OLD_FIXED_LIMIT = 32


class Running:
    """Executors running now, at most, and the counts seen."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.seen: list[int] = []

    def look(self) -> None:
        self.seen.append(self.now)


def counted_steps(name: str, running: Running, seconds: float, nodes: int) -> WorkflowDefinition:
    """A definition of ``nodes`` nodes one after the other, each sleeping ``seconds`` (none:
    returning at once), counted in ``running`` while they run."""

    async def step(node: NodeHandle, ctx: FlowContext) -> None:
        running.now += 1
        running.peak = max(running.peak, running.now)
        try:
            if seconds:
                await asyncio.sleep(seconds)
        finally:
            running.now -= 1

    keys = ["start"] + [f"step-{n}" for n in range(2, nodes + 1)]
    return WorkflowDefinition(
        name,
        {
            key: NodeDefinition(key, step, success=keys[n + 1] if n + 1 < nodes else "")
            for n, key in enumerate(keys)
        },
    )


async def run(server_url: str, *, size: Size, progress: bool = True) -> dict[str, Any]:
    """The phase's figures (each named ``slow_...``)."""
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    running = Running()
    async with scratch_database(server_url) as url:
        registry = Registry([counted_steps(FLOW_NAME, running, NODE_SECONDS, NODES)])
        async with Engine(url, registry, reactor=ReactorSettings()) as engine:
            assert engine.reactor is not None
            reactor = engine.reactor
            limits: list[int] = []

            def look() -> None:
                running.look()
                limits.append(reactor.limit.limit)

            _, seconds = await create_and_finish(
                engine, FLOW_NAME, flows, progress, desc="bench flows, 200 ms executors",
                tick=look,
            )  # fmt: skip
            settled = reactor.limit.limit
    mean = statistics.fmean(running.seen) if running.seen else 0.0
    return {
        "slow_flows": flows,
        "slow_node_seconds": NODE_SECONDS,
        "slow_flows_per_s": round(flows / seconds, 1),
        "slow_concurrency_limit": settled,
        "slow_peak_concurrency_limit": max(limits, default=settled),
        "slow_mean_concurrency_limit": round(statistics.fmean(limits), 1) if limits else settled,
        "slow_peak_executors": running.peak,
        "slow_mean_executors": round(mean, 1),
        "slow_flows_per_s_by_executors": round(mean / (NODE_SECONDS * NODES), 1),
        "slow_fixed_32_flows_per_s": round(OLD_FIXED_LIMIT / (NODE_SECONDS * NODES), 1),
    }
