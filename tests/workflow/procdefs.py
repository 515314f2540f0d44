"""Definitions for the multi-process tests, loaded by ``flowlog worker --definitions``.

Each node run appends a line "flow_id key attempt pid" to a file in $RUNS_DIR, so the test
can count how often every node really ran, even in a worker killed with SIGKILL (the line is
written before the node's outcome is recorded).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.executor import Finished, FlowContext, NodeHandle, PollResult, Running
from flowlog.workflow.fanout import Children
from flowlog.workflow.limits import Concurrency


def _sleep_range() -> tuple[float, float]:
    low, _, high = os.environ.get("PROC_SLEEP_MS", "0").partition("-")
    return float(low) / 1000, float(high or low) / 1000


async def step(node: NodeHandle, ctx: FlowContext) -> None:
    runs = os.environ.get("RUNS_DIR")
    if runs:
        line = f"{node.flow_id} {node.key} {node.attempt} {os.getpid()}\n"
        # Blocking on purpose: the line must exist before the node's outcome can be recorded.
        with open(os.path.join(runs, f"runs-{os.getpid()}.txt"), "a") as out:  # noqa: ASYNC230
            out.write(line)
    low, high = _sleep_range()
    if high > 0:
        await asyncio.sleep(random.uniform(low, high))


DEFINITIONS = [
    WorkflowDefinition(
        "proc",
        {
            "start": NodeDefinition("one", step, success="two"),
            "two": NodeDefinition("two", step, success="three"),
            "three": NodeDefinition("three", step),
        },
    )
]


async def crash(node: NodeHandle, ctx: FlowContext) -> None:
    """Kills the worker running it, every time (SIGKILL: no chance to record anything)."""
    await step(node, ctx)
    os.kill(os.getpid(), signal.SIGKILL)


DEFINITIONS.append(
    WorkflowDefinition(
        "crashy",
        {
            "start": NodeDefinition(
                "crash", crash, success="", fail="cleanup", max_interruptions=2
            ),
            "cleanup": NodeDefinition("cleanup", step),
        },
    )
)


async def submit_wait(node: NodeHandle, ctx: FlowContext) -> str:
    """Submits an "operation" that is done at a time it names (its id): no outside state, so
    any process can poll it, including one that takes the flow over after a kill."""
    await step(node, ctx)
    return f"{time.time() + float(os.environ.get('PROC_WAIT_S', '2')):.3f}"


async def poll_wait(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
    runs = os.environ.get("RUNS_DIR")
    if runs:
        with open(os.path.join(runs, f"polls-{os.getpid()}.txt"), "a") as out:  # noqa: ASYNC230
            out.write(f"{node.flow_id}\n")
    return Finished("done") if time.time() >= float(operation_id) else Running()


DEFINITIONS.append(
    WorkflowDefinition(
        "waiter",
        {
            "start": NodeDefinition(
                "wait",
                submit_wait,
                kind=NodeKind.POLLING,
                poll=poll_wait,
                poll_interval=0.2,
                poll_deadline=120,
                success="after",
            ),
            "after": NodeDefinition("after", step),
        },
    )
)


async def count_item(node: NodeHandle, ctx: FlowContext) -> None:
    await step(node, ctx)
    ctx["done"] = ctx["item"]


# A fleet: a child flow per item (five at a time), then two branches side by side.
DEFINITIONS.append(WorkflowDefinition("item", {"start": NodeDefinition("item", count_item)}))
DEFINITIONS.append(
    WorkflowDefinition(
        "fleet",
        {
            "start": NodeDefinition(
                "each",
                kind=NodeKind.MAP,
                success="both",
                children=Children(
                    flow="item",
                    items="items",
                    max_concurrency=5,
                    results_key="results",
                    result_key="done",
                ),
            ),
            "both": NodeDefinition(
                "both",
                kind=NodeKind.PARALLEL,
                success="end",
                children=Children(branches={"left": "left", "right": "right"}),
            ),
            "left": NodeDefinition("left", step),
            "right": NodeDefinition("right", step),
            "end": NodeDefinition("end", step),
        },
    )
)


async def counted(node: NodeHandle, ctx: FlowContext) -> None:
    """Notes when it begins and ends, by cluster: the test counts the runs at once per cluster
    (the executors' own count, across processes)."""
    runs = os.environ["RUNS_DIR"]
    path = os.path.join(runs, f"spans-{os.getpid()}.txt")
    cluster = ctx["clusterId"]
    with open(path, "a") as out:  # noqa: ASYNC230 - written before the outcome, as step's
        out.write(f"begin {node.key} {cluster} {node.flow_id} {time.time():.6f}\n")
    low, high = _sleep_range()
    await asyncio.sleep(random.uniform(low, high))
    with open(path, "a") as out:  # noqa: ASYNC230
        out.write(f"end {node.key} {cluster} {node.flow_id} {time.time():.6f}\n")


DEFINITIONS.append(
    WorkflowDefinition(
        "limited",
        {
            "start": NodeDefinition("prepare", counted, success="apply"),
            "apply": NodeDefinition(
                "apply", counted, concurrency=Concurrency("context.clusterId", 1)
            ),
        },
        concurrency=Concurrency("context.clusterId", 2),
    )
)
