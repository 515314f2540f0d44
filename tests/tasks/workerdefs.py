"""Definitions whose middle node is offered on the queue "gpu", for the Python worker's tests:
loaded by the test server (its other nodes run in its reactor) and by the worker (which runs
the middle node), in the test's process or in a ``flowlog serve`` and a ``flowlog worker``."""

from __future__ import annotations

from collections import Counter

from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.errors import NodeError
from flowlog.workflow.executor import (
    Executor,
    Finished,
    FlowContext,
    NodeHandle,
    PollResult,
    Running,
)
from tests.workflow.defs import noop

QUEUE = "gpu"
POLLS: Counter[str] = Counter()
"""How many times each operation was polled (in this process)."""


async def render(node: NodeHandle, ctx: FlowContext) -> None:
    """Doubles the frame, forgets the scratch key, records what it did."""
    frame = ctx["frame"]
    ctx["rendered"] = frame * 2
    ctx.pop("scratch", None)
    node.record(f"frame {frame} on attempt {node.attempt}")


async def broken(node: NodeHandle, ctx: FlowContext) -> None:
    raise NodeError("no GPU left", code=7002)


async def submit(node: NodeHandle, ctx: FlowContext) -> str:
    ctx["submitted"] = True
    return f"op-{ctx['frame']}"


async def poll_twice(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
    """Running the first time an operation is polled, then Finished."""
    POLLS[operation_id] += 1
    if POLLS[operation_id] == 1:
        return Running()
    return Finished(f"{operation_id} rendered")


def queued(name: str, middle: NodeDefinition) -> WorkflowDefinition:
    """prepare -> ``middle`` (offered on the queue) -> finish; a failed middle -> cleanup."""
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("prepare", noop, success="render"),
            "render": middle,
            "finish": NodeDefinition("finish", noop),
            "cleanup": NodeDefinition("cleanup", noop),
        },
    )


def on_gpu(name: str, executor: Executor, **settings: object) -> WorkflowDefinition:
    node = NodeDefinition("render", executor, queue=QUEUE, success="finish", fail="cleanup",
                          **settings)  # type: ignore[arg-type]  # fmt: skip
    return queued(name, node)


GPU_RENDER = on_gpu("gpu-render", render)
GPU_POLLING = on_gpu(
    "gpu-polling", submit, kind=NodeKind.POLLING, poll=poll_twice, poll_interval=0.05,
    poll_deadline=30,
)  # fmt: skip
DEFINITIONS = [GPU_RENDER, GPU_POLLING]
