"""Decisions on a node that runs children (map, parallel, subflow): which children start
next and with what, and when the node ends and how. Pure: the drive (app/workflow/
children.py) reads the children's ends and acts on the children, these functions decide.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowlog.workflow.commands import RecordFailure, RecordSuccess
from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.errors import Code
from flowlog.workflow.events import ParentLink
from flowlog.workflow.fanout import MAX_DEPTH, MAX_ITEMS, Children
from flowlog.workflow.state import Fan, FlowState, FlowStatus

_CHILDREN = uuid.UUID("6f0c2a58-3b1e-5d8a-9a55-2f3c4e5d6a7b")
"""The namespace of child flow ids (name-based UUIDs, version 5)."""


def child_flow_id(children_of: str, index: int) -> str:
    """A child's flow id derives from the node execution that started it and its index: the
    same decision, the same child, whoever makes it and however often."""
    return str(uuid.uuid5(_CHILDREN, f"{children_of}/{index}"))


@dataclass(frozen=True, slots=True)
class ChildToStart:
    flow_id: str
    definition: str
    """The child's definition: by name (map, subflow) or the parent's own version
    (parallel)."""
    biz_id: str
    context: Mapping[str, Any]
    parent: ParentLink
    entry: str | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """A child's end as ``flow_children`` holds it."""

    index: int
    status: str
    context: Mapping[str, Any]


def settings(node: NodeDefinition) -> Children:
    assert node.children is not None  # a node of a child kind has them (definition checks)
    return node.children


def planned(state: FlowState, node: NodeDefinition) -> int | RecordFailure:
    """How many children the running node runs, or why it cannot run them."""
    spec = settings(node)
    if depth_of(state) >= MAX_DEPTH:
        return _cannot_start(state, f"the flow is {depth_of(state)} deep in its tree of flows "
                                    f"(children at most {MAX_DEPTH} deep)")  # fmt: skip
    if node.kind is NodeKind.SUBFLOW:
        return 1
    if node.kind is NodeKind.PARALLEL:
        return len(spec.branches)
    items = state.context.get(spec.items)
    if not isinstance(items, list):
        shown = "missing" if spec.items not in state.context else type(items).__name__
        return _cannot_start(state, f"the context's {spec.items!r} is not a list ({shown})")
    if len(items) > MAX_ITEMS:
        return _cannot_start(
            state, f"the context's {spec.items!r} has {len(items)} elements (at most {MAX_ITEMS})"
        )
    return len(items)


def depth_of(state: FlowState) -> int:
    return 0 if state.parent is None else state.parent.depth


def limit(node: NodeDefinition, total: int) -> int:
    return settings(node).max_concurrency if node.kind is NodeKind.MAP else max(1, total)


def next_children(state: FlowState, node: NodeDefinition) -> range:
    """Indexes of the children to start now: none while the flow is not Processing, while the
    children are stopped or failed ones wait to run again, or once the node has its verdict."""
    fan = state.fan
    if fan is None or fan.total is None or state.status is not FlowStatus.PROCESSING:
        return range(0)
    if fan.stopped or fan.retrying or verdict(fan, node) is not None:
        return range(0)
    room = fan.limit - fan.running
    return range(fan.started, min(fan.total, fan.started + max(0, room)))


def child_to_start(
    state: FlowState, node: NodeDefinition, definition: WorkflowDefinition, index: int
) -> ChildToStart:
    fan = state.fan
    assert fan is not None
    spec = settings(node)
    context = dict(state.context)
    flow_id = child_flow_id(fan.children_of, index)
    if node.kind is NodeKind.MAP:
        items = state.context[spec.items]
        # The list itself is not passed on: 10,000 children each holding 10,000 elements
        # would store the list 10,000 times.
        context.pop(spec.items, None)
        context[spec.item_key] = items[index]
        link = ParentLink(
            flow_id=state.flow_id, node_id=fan.children_of, index=index, depth=depth_of(state) + 1
        )
        return ChildToStart(flow_id, spec.flow, f"{state.biz_id}/{index}", context, link)
    if node.kind is NodeKind.SUBFLOW:
        context.update(spec.context)
        link = ParentLink(
            flow_id=state.flow_id, node_id=fan.children_of, index=0, depth=depth_of(state) + 1
        )
        return ChildToStart(flow_id, spec.flow, f"{state.biz_id}/{fan.key}", context, link)
    branch, entry = list(spec.branches.items())[index]
    link = ParentLink(
        flow_id=state.flow_id,
        node_id=fan.children_of,
        index=index,
        branch=branch,
        depth=depth_of(state) + 1,
    )
    return ChildToStart(
        flow_id, definition.version, f"{state.biz_id}/{branch}", context, link, entry
    )


def verdict(fan: Fan, node: NodeDefinition) -> str | None:
    """``"success"``, ``"failure"``, or None while the node must wait for more children."""
    if fan.total is None:
        return None
    total, failed, finished = fan.total, len(fan.failed), fan.finished
    ended = finished + failed
    spec = settings(node)
    if node.kind is NodeKind.PARALLEL:
        needed = spec.needed(total)
        if finished >= needed:
            return "success"
        if spec.on_branch_failure == "wait":
            return "failure" if ended == total else None
        return "failure" if total - failed < needed else None
    tolerated = spec.tolerated(total) if node.kind is NodeKind.MAP else 0
    if failed > tolerated:
        return "failure"
    return "success" if ended == total else None


def outcome(
    state: FlowState, node: NodeDefinition, ends: Sequence[Ended]
) -> RecordSuccess | RecordFailure:
    """The node's outcome once its verdict is in; ``ends``: every child's end, by index."""
    fan = state.fan
    assert fan is not None
    assert fan.total is not None
    running = state.running_node
    assert running is not None
    spec = settings(node)
    if verdict(fan, node) == "failure":
        return RecordFailure(running.node_id, Code.CHILDREN_FAILED, _failure(fan, node, spec))
    by_index = {end.index: end for end in ends if end.status == FlowStatus.FINISHED.value}
    changes: dict[str, Any] = {}
    if node.kind is NodeKind.MAP and spec.results_key:
        changes[spec.results_key] = [
            _result(by_index[i].context, spec.result_key) if i in by_index else None
            for i in range(fan.total)
        ]
    elif node.kind is NodeKind.SUBFLOW and spec.result_key and 0 in by_index:
        changes[spec.result_key] = dict(by_index[0].context)
    elif node.kind is NodeKind.PARALLEL:
        names = list(spec.branches)
        for i in sorted(by_index):  # branches' changes, in the order they are declared
            changes.update({k: v for k, v in by_index[i].context.items()
                            if state.context.get(k) != v})  # fmt: skip
        if spec.results_key:
            changes[spec.results_key] = {names[i]: dict(by_index[i].context) for i in by_index}
    counted = f"{fan.finished} of {fan.total} children finished"
    return RecordSuccess(running.node_id, result=counted + "\n", changes=changes)


def _result(context: Mapping[str, Any], key: str) -> Any:
    return context.get(key) if key else dict(context)


def _failure(fan: Fan, node: NodeDefinition, spec: Children) -> str:
    assert fan.total is not None
    failed = sorted(fan.failed)
    shown = ", ".join(str(i) for i in failed[:10]) + (", ..." if len(failed) > 10 else "")
    if node.kind is NodeKind.SUBFLOW:
        return "the sub-flow did not finish"
    if node.kind is NodeKind.PARALLEL:
        names = list(spec.branches)
        branches = ", ".join(names[i] for i in failed)
        needed = spec.needed(fan.total)
        return f"branches failed: {branches} ({fan.finished} of {needed} needed ended well)"
    return (f"{len(failed)} of {fan.total} children failed ({spec.tolerated(fan.total)} "
            f"tolerated): indexes {shown}")  # fmt: skip


def _cannot_start(state: FlowState, message: str) -> RecordFailure:
    running = state.running_node
    assert running is not None
    return RecordFailure(running.node_id, Code.CHILDREN_NOT_STARTED, message, message + "\n")
