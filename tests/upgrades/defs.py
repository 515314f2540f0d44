"""The backup flow before and after a deploy that changes its shape (a check node added after
the hold), for the upgrade tests (importable by ``flowlog`` processes too)."""

from __future__ import annotations

from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from tests.tasks.workerdefs import QUEUE
from tests.workflow.defs import noop


async def hold(node: NodeHandle, ctx: FlowContext) -> float:
    """A timer: the flow waits ``ctx["hold"]`` seconds (no worker held meanwhile)."""
    return float(ctx.get("hold", 1.0))


def _backup(*, checked: bool) -> WorkflowDefinition:
    if not checked:
        return WorkflowDefinition(
            "backup",
            {
                "start": NodeDefinition("hold", hold, kind=NodeKind.TIMER, success="held"),
                "held": NodeDefinition("end", noop),
            },
        )
    return WorkflowDefinition(
        "backup",
        {
            "start": NodeDefinition("hold", hold, kind=NodeKind.TIMER, success="held"),
            "held": NodeDefinition("check", noop, success="checked"),
            "checked": NodeDefinition("end", noop),
        },
    )


V1 = _backup(checked=False)
"""hold -> end."""
V2 = _backup(checked=True)
"""hold -> check -> end: another shape, so another version."""

REMOTE = WorkflowDefinition(
    "remote",
    {
        "start": NodeDefinition("render", noop, queue=QUEUE, success="done"),
        "done": NodeDefinition("done", noop),
    },
)
"""Its node is offered on a task queue, for a worker anywhere."""
