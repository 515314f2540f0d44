"""The fold: ``evolve(state, event, at)``, a flow's events made into its state. Pure: no I/O,
no clock.

``at`` is when the event was recorded (the log's ``recorded_at``); node start and end times
come from it, so a replay yields the very same state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from flowlog.records import replacer, update_owned
from flowlog.workflow.definition import CHILD_KINDS
from flowlog.workflow.events import (
    CallbackReceived,
    CancelRequested,
    ChildrenCommanded,
    ChildrenEnded,
    ChildrenStarted,
    ContextSet,
    FlowArchived,
    FlowCanceled,
    FlowCreated,
    FlowEvent,
    FlowFailed,
    FlowFinished,
    FlowMigrated,
    FlowRestored,
    FlowResumed,
    FlowRetried,
    FlowStarted,
    FlowStopped,
    NodeFailed,
    NodeOperationSubmitted,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
)
from flowlog.workflow.state import Fan, FlowState, FlowStatus, NodeExecution, NodeStatus

_replace_flow = replacer(FlowState)
_replace_node = replacer(NodeExecution)
_replace_fan = replacer(Fan)


class FoldError(ValueError):
    """A history that no decision could have produced (corrupt or foreign events)."""


def evolve(state: FlowState | None, event: FlowEvent, at: datetime) -> FlowState:
    """The state after ``event``, recorded at ``at``."""
    if state is None:
        if not isinstance(event, FlowCreated):
            raise FoldError(f"a flow's history starts with FlowCreated, not {type(event).__name__}")
        return FlowState(
            flow_id=event.flow_id,
            name=event.name,
            biz_id=event.biz_id,
            biz_type=event.biz_type,
            definition_version=event.definition_version,
            tenant_id=event.tenant_id,
            status=FlowStatus.INITIALIZING,
            context=_frozen(event.context),
            version=1,
            created_at=at,
            updated_at=at,
            cursor=event.entry or "start",
            parent=event.parent,
            priority=event.priority,
        )
    changes = _changes(state, event, at, False)
    changes["version"] = state.version + 1
    changes["updated_at"] = at
    return _replace_flow(state, **changes)


def evolve_owned(state: FlowState | None, event: FlowEvent, at: datetime) -> FlowState:
    """``evolve`` for a fold that alone holds ``state`` (it made it from the history's first
    event and hands out only the end): the changes are set on ``state`` itself instead of on a
    copy. A copy per event was a fifth of a rebuild's time; the changes are the same
    ``_changes``, all computed from the state before any is set. The running node's are set
    on the node itself as they are made (the fold made that node too, at its NodeStarted, and
    nothing after reads what they replace)."""
    if state is None:
        return evolve(None, event, at)
    changes = _changes(state, event, at, True)
    changes["version"] = state.version + 1
    changes["updated_at"] = at
    update_owned(state, changes)
    return state


def _changes(state: FlowState, event: FlowEvent, at: datetime, owned: bool) -> dict[str, Any]:
    """The fields ``event`` changes (one ``replace`` per event keeps the fold cheap); with
    ``owned``, the running node's are set on it."""
    match event:
        case ContextSet():
            return {"context": _changed(state.context, event.changes, event.removed)}
        case FlowStarted() | FlowResumed():
            return {"status": FlowStatus.PROCESSING}
        case FlowStopped():
            return {"status": FlowStatus.STOPPED, "reason": event.reason}
        case CancelRequested():
            return {"status": FlowStatus.CANCELING, "reason": event.reason}
        case FlowCanceled():
            nodes = state.nodes
            if event.node_id is not None:
                nodes = _update_node(
                    state, event.node_id, owned, status=NodeStatus.CANCELED, ended_at=at
                )
            return {"status": FlowStatus.CANCELED, "nodes": nodes, "reason": event.reason}
        case FlowRetried():
            fan = state.fan
            if fan is not None and fan.key == event.from_key and event.child_changes is not None:
                patch = (_frozen(event.child_changes), tuple(event.child_removed or ()))
                fan = _replace_fan(fan, patch=patch)
            return {
                "fan": fan,
                "status": FlowStatus.PROCESSING,
                "cursor": event.from_key,
                "failed_path": False,
                "failed_key": None,
                "error_code": None,
                "error_message": None,
            }
        case NodeStarted():
            return _node_started(state, event, at)
        case NodeOperationSubmitted():
            nodes = _update_node(
                state,
                event.node_id,
                owned,
                operation_id=event.operation_id,
                next_poll_at=event.next_poll_at,
                poll_deadline=event.poll_deadline,
            )
            context = _changed(state.context, event.context_changes, event.context_removed)
            return {"nodes": nodes, "context": context}
        case NodeWaiting():
            nodes = _update_node(
                state,
                event.node_id,
                owned,
                waiting=True,
                wake_at=event.wake_at,
                deadline=event.deadline,
                callback=event.callback,
                event=event.event,
                waiting_since=at,
            )
            context = _changed(state.context, event.context_changes, event.context_removed)
            return {"nodes": nodes, "context": context}
        case CallbackReceived():
            _update_node(
                state, event.node_id, owned
            )  # only checks that the node is the running one
            return {}
        case NodeSucceeded():
            nodes = _update_node(
                state,
                event.node_id,
                owned,
                status=NodeStatus.FINISHED,
                ended_at=at,
                result=event.result,
                parameters=event.parameters,
            )
            context = _changed(state.context, event.context_changes, event.context_removed)
            return {"nodes": nodes, "context": context, "cursor": event.next}
        case NodeFailed():
            return _node_failed(state, event, at, owned)
        case FlowFinished():
            return {"status": FlowStatus.FINISHED, "cursor": None}
        case FlowFailed():
            return {
                "status": FlowStatus.ERROR,
                "cursor": None,
                "error_code": event.error_code,
                "error_message": event.error_message,
            }
        case ChildrenStarted() | ChildrenEnded() | ChildrenCommanded():
            return {"fan": _fan_changed(state, event)}
        case FlowArchived():
            return {"archived": True}
        case FlowRestored():
            return {"archived": False}
        case FlowMigrated():
            return _migrated(state, event)
        case FlowCreated():
            raise FoldError("FlowCreated can only start a history")
    raise FoldError(f"unknown event {type(event).__name__}")


def retimed(state: FlowState, placeholder: datetime, at: datetime) -> FlowState:
    """``state`` with every time equal to ``placeholder`` replaced by ``at``.

    Folding events at a placeholder time and then retiming is the same as folding them at
    ``at`` (the events of one append share their recorded time), and cheaper than folding
    twice.
    """
    nodes = tuple(
        _replace_node(
            node,
            started_at=at if node.started_at == placeholder else node.started_at,
            ended_at=at if node.ended_at == placeholder else node.ended_at,
            waiting_since=at if node.waiting_since == placeholder else node.waiting_since,
        )
        if placeholder in (node.started_at, node.ended_at, node.waiting_since)
        else node
        for node in state.nodes
    )
    return _replace_flow(
        state,
        nodes=nodes,
        created_at=at if state.created_at == placeholder else state.created_at,
        updated_at=at if state.updated_at == placeholder else state.updated_at,
    )


def fold(history: Iterable[tuple[FlowEvent, datetime]]) -> FlowState | None:
    state: FlowState | None = None
    for event, at in history:
        state = evolve_owned(state, event, at)
    return state


def _node_started(state: FlowState, event: NodeStarted, at: datetime) -> dict[str, Any]:
    if state.running_node is not None:
        raise FoldError(f"node {event.node_id} started while {state.running_node.node_id} runs")
    previous = state.last_execution_of(event.key)
    continues_retries = previous is not None and previous.will_retry
    execution = NodeExecution(
        node_id=event.node_id,
        sequence=len(state.nodes) + 1,
        key=event.key,
        name=event.name,
        kind=event.kind,
        attempt=event.attempt,
        series=previous.series + 1 if continues_retries and previous is not None else 1,
        status=NodeStatus.PROCESSING,
        started_at=at,
        version=state.version + 1,
        queue=event.queue,
    )
    changes: dict[str, Any] = {"nodes": (*state.nodes, execution), "cursor": event.key}
    if event.kind in CHILD_KINDS:
        changes["fan"] = _fan_started(state, event)
    return changes


def _fan_started(state: FlowState, event: NodeStarted) -> Fan:
    before = state.fan
    if event.adopts is None:
        return Fan(node_id=event.node_id, key=event.key, children_of=event.node_id)
    if before is None or before.node_id != event.adopts:
        raise FoldError(f"node {event.node_id} adopts the children of {event.adopts}, "
                        "which has none")  # fmt: skip
    return _replace_fan(before, node_id=event.node_id, retrying=True)


def _fan_changed(
    state: FlowState, event: ChildrenStarted | ChildrenEnded | ChildrenCommanded
) -> Fan:
    fan = state.fan
    running = state.running_node
    if fan is None or running is None or not event.node_id == fan.node_id == running.node_id:
        raise FoldError(f"node {event.node_id} is not running children in {state.flow_id}")
    match event:
        case ChildrenStarted():
            return _replace_fan(fan, total=event.total, limit=event.limit,
                                started=event.first + event.count)  # fmt: skip
        case ChildrenEnded():
            finished, failed = fan.finished, set(fan.failed)
            for index, status in event.ended:
                if status == FlowStatus.FINISHED.value:
                    finished += 1
                    failed.discard(index)
                else:
                    failed.add(index)
            return _replace_fan(fan, finished=finished, failed=frozenset(failed))
        case ChildrenCommanded(command="stop"):
            return _replace_fan(fan, stopped=True)
        case ChildrenCommanded(command="resume"):
            return _replace_fan(fan, stopped=False)
        case ChildrenCommanded(command="retry"):
            indexes = frozenset(event.indexes)
            return _replace_fan(fan, failed=fan.failed - indexes,
                                retrying=False, patch=None)  # fmt: skip
    return fan


def _migrated(state: FlowState, event: FlowMigrated) -> dict[str, Any]:
    """The flow under another version: every node key the state holds is renamed, so that
    the target version finds what it looks up by key. The cursor (where it goes on), the
    failed key (what Retry runs again), the fan's key (whose children a retry takes over)
    and every execution's key (the running one is recorded against the target's node, a
    retry series and the interruptions in a row are counted by key, and the console draws
    executions on the target's graph by key). Names are kept: an execution ran under the
    name it was recorded with."""
    if event.from_version != state.definition_version:
        raise FoldError(f"flow {state.flow_id} is on version {state.definition_version}, "
                        f"not {event.from_version}: it cannot migrate from there")  # fmt: skip
    changes: dict[str, Any] = {"definition_version": event.to_version}
    if not event.node_map:
        return changes
    renamed = event.node_map.get
    changes["cursor"] = None if state.cursor is None else renamed(state.cursor, state.cursor)
    if state.failed_key is not None:
        changes["failed_key"] = renamed(state.failed_key, state.failed_key)
    if state.fan is not None:
        changes["fan"] = _replace_fan(state.fan, key=renamed(state.fan.key, state.fan.key))
    version = state.version + 1
    changes["nodes"] = tuple(
        _replace_node(node, key=event.node_map[node.key], version=version)
        if node.key in event.node_map and event.node_map[node.key] != node.key
        else node
        for node in state.nodes
    )
    return changes


def renamed_nodes(state: FlowState, event: FlowMigrated) -> list[str]:
    """The node executions whose key ``event`` renames (their rows change)."""
    return [n.node_id for n in state.nodes if event.node_map.get(n.key, n.key) != n.key]


def _node_failed(state: FlowState, event: NodeFailed, at: datetime, owned: bool) -> dict[str, Any]:
    failed = state.running_node
    nodes = _update_node(
        state,
        event.node_id,
        owned,
        status=NodeStatus.ERROR,
        ended_at=at,
        result=event.result,
        parameters=event.parameters,
        error_code=event.error_code,
        error_message=event.error_message,
        will_retry=event.will_retry,
        retry_at=event.retry_at,
    )
    assert failed is not None  # _update_node checked it
    changes: dict[str, Any] = {
        "nodes": nodes,
        "context": _changed(state.context, event.context_changes, event.context_removed),
    }
    if event.will_retry:
        return changes
    if event.pause:
        return {**changes, "status": FlowStatus.STOPPED}
    if state.failed_path:  # a failure on the failure path: the first failure is the flow's
        return {**changes, "cursor": event.next}
    return {
        **changes,
        "cursor": event.next,
        "failed_path": True,
        "failed_key": failed.key,
        "error_code": event.error_code,
        "error_message": event.error_message,
    }


def _update_node(
    state: FlowState, node_id: str, owned: bool, **changes: Any
) -> tuple[NodeExecution, ...]:
    """The nodes with the running one changed: a copy, or (``owned``) the same nodes."""
    last = state.running_node
    if last is None or last.node_id != node_id:
        raise FoldError(f"node {node_id} is not the running node of flow {state.flow_id}")
    changes["version"] = state.version + 1
    if not owned:
        return (*state.nodes[:-1], _replace_node(last, **changes))
    update_owned(last, changes)
    return state.nodes


def _frozen(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(data))


def _changed(
    context: Mapping[str, Any], changes: Mapping[str, Any], removed: Iterable[str]
) -> Mapping[str, Any]:
    removed = list(removed)
    if not changes and not removed:
        return context
    updated = dict(context)
    updated.update(changes)
    for key in removed:
        updated.pop(key, None)
    return _frozen(updated)
