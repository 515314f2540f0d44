"""Definitions of ``flowlog bench callbacks``, loaded by its ``flowlog serve --definitions``.

- ``bench-callbacks``: a ``noop`` node, a callback node whose action does nothing (the
  benchmark computes each token itself, as an operator reads it on the flow's detail) and has
  no deadline, then a ``noop`` node;
- ``bench-timers``: a timer node that waits until the flow's context says (``wakeAt``, Unix
  seconds), then a ``noop`` node.

Every action is trivial: what the benchmark measures is the engine's cost of waiting and of
moving on, not the nodes' work.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle

CALLBACK_FLOW = "bench-callbacks"
TIMER_FLOW = "bench-timers"
CALLBACK_SEQUENCE = 2
"""The callback node is the flow's second node execution: its id is ``<flow id>.2``."""
TIMER_SEQUENCE = 1


async def noop(node: NodeHandle, ctx: FlowContext) -> None:
    return None


async def wake_at(node: NodeHandle, ctx: FlowContext) -> datetime:
    return datetime.fromtimestamp(float(ctx["wakeAt"]), UTC)


DEFINITIONS = [
    WorkflowDefinition(
        CALLBACK_FLOW,
        {
            "start": NodeDefinition("prepare", noop, success="approve"),
            "approve": NodeDefinition("approve", noop, kind=NodeKind.CALLBACK, success="apply"),
            "apply": NodeDefinition("apply", noop),
        },
    ),
    WorkflowDefinition(
        TIMER_FLOW,
        {
            "start": NodeDefinition("wait", wake_at, kind=NodeKind.TIMER, success="after"),
            "after": NodeDefinition("after", noop),
        },
    ),
]
