"""The definition ``flowlog bench schedules`` fires: one node that does nothing."""

from __future__ import annotations

from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle

NAME = "bench-tick"


async def tick(node: NodeHandle, ctx: FlowContext) -> None:
    return None


DEFINITIONS = [WorkflowDefinition(NAME, {"start": NodeDefinition("tick", tick)})]
