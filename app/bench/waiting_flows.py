"""Definitions of ``flowlog bench waiting``, loaded by its ``flowlog serve --definitions``.

One polling node whose operation is done at a time it names: its id, copied from the flow's
context (``readyAt``, Unix seconds). A poll is a comparison with the clock:
what the benchmark measures is the engine's cost of waiting, not the poll's.
"""

from __future__ import annotations

import time

from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.executor import Finished, FlowContext, NodeHandle, PollResult, Running

NAME = "bench-waiting"
POLL_INTERVAL = 3.0
"""The seed's polling interval."""


async def submit(node: NodeHandle, ctx: FlowContext) -> str:
    return str(ctx["readyAt"])


async def poll(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
    return Finished("ready") if time.time() >= float(operation_id) else Running()


async def after(node: NodeHandle, ctx: FlowContext) -> None:
    return None


DEFINITIONS = [
    WorkflowDefinition(
        NAME,
        {
            "start": NodeDefinition(
                "wait",
                submit,
                kind=NodeKind.POLLING,
                poll=poll,
                poll_interval=POLL_INTERVAL,
                poll_deadline=86400,
                success="after",
            ),
            "after": NodeDefinition("after", after),
        },
    )
]
