"""The children of a flow's map, parallel and subflow nodes, as its detail shows them: counts
by status for each node execution that started children, and for parallel and subflow nodes
the children themselves (a parallel node's with their node executions: its lanes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

from flowlog.eventstore.pool import Executor
from flowlog.projections.reads import children_counts, children_listed, get_nodes
from flowlog.projections.rows import NodeRow
from flowlog.wire.flows import ChildFlow, ChildrenInfo, node_of
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import TERMINAL, FlowStatus

_KINDS = ("map", "parallel", "subflow")
_RUNNING = frozenset(status.value for status in FlowStatus if status not in TERMINAL)
_LISTED = ("parallel", "subflow")
Kind = Literal["map", "parallel", "subflow"]


async def children_info(
    pool: Executor, service: WorkflowService, flow_id: str, executions: Sequence[NodeRow]
) -> list[ChildrenInfo] | None:
    """None for a flow that has no node that runs children (its detail keeps the seed's
    shape); ``executions``: every node execution of the flow."""
    nodes = [n for n in executions if n.kind in _KINDS]
    if not nodes:
        return None
    counts = await children_counts(pool, flow_id)
    fan = (await service.get(flow_id)).fan
    by_id = {n.id: n for n in nodes}
    listed = [n.id for n in nodes if n.kind in _LISTED]
    children: dict[str, list[ChildFlow]] = {}
    for child in await children_listed(pool, flow_id, listed):
        lane = [node_of(n) for n in await get_nodes(pool, child.id)] if child.branch else []
        children.setdefault(child.parent_node_id, []).append(
            ChildFlow(
                workFlowId=child.id,
                index=child.child_index,
                status=child.status,
                branch=child.branch,
                nodes=lane,
            )
        )
    infos = []
    for node in nodes:
        if fan is not None and node.id == fan.node_id and fan.children_of != node.id:
            continue  # a retry's execution: it took over the children of the one it adopts
        by_status = counts.get(node.id, {})
        started = sum(by_status.values())
        total = started
        if fan is not None and fan.children_of == node.id and fan.total is not None:
            total = fan.total
        infos.append(_info(by_id[node.id], by_status, total, started, children.get(node.id, [])))
    return infos


def _info(
    node: NodeRow, by_status: dict[str, int], total: int, started: int, flows: list[ChildFlow]
) -> ChildrenInfo:
    return ChildrenInfo(
        nodeId=node.id, key=node.node_key, name=node.name, kind=cast(Kind, node.kind),
        total=total, notStarted=max(0, total - started),
        running=sum(by_status.get(s, 0) for s in _RUNNING),
        finished=by_status.get("Finished", 0), failed=by_status.get("Error", 0),
        canceled=by_status.get("Canceled", 0), flows=flows,
    )  # fmt: skip
