"""Decisions on the reactor's commands: a node starts, records its outcome, waits, wakes or
is interrupted, and the flow ends; and when the reactor should next look at a flow. Pure.

A command that speaks of a node that is no longer the running one is refused with
``StaleOutcome``: a worker that lost its lease, or a node already recorded, must not change
anything.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flowlog.workflow.commands import (
    Interrupt,
    RecordCanceled,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RecordWaiting,
    Wake,
)
from flowlog.workflow.definition import (
    CHILD_KINDS,
    PAUSE,
    WAITING_KINDS,
    NodeDefinition,
    NodeKind,
    WorkflowDefinition,
)
from flowlog.workflow.errors import Code, StaleOutcome
from flowlog.workflow.event_waits import NotRendered
from flowlog.workflow.events import (
    FlowCanceled,
    FlowEvent,
    FlowFailed,
    FlowFinished,
    NodeFailed,
    NodeOperationSubmitted,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
)
from flowlog.workflow.state import Fan, FlowState, FlowStatus, NodeExecution, NodeStatus


def node_id_for(flow_id: str, sequence: int) -> str:
    """Node execution ids are derived, not random: the same decision, the same id."""
    return f"{flow_id}.{sequence}"


def advance(state: FlowState, definition: WorkflowDefinition, now: datetime) -> list[FlowEvent]:
    if state.running_node is not None:
        return []
    if state.status is FlowStatus.CANCELING:
        return [FlowCanceled(reason=state.reason)]
    if state.status is not FlowStatus.PROCESSING:
        return []
    last = state.last_node
    if last is not None and last.will_retry and last.retry_at is not None and last.retry_at > now:
        return []  # the retry is not due yet
    if state.cursor is None:
        if state.failed_path:
            return [
                FlowFailed(
                    error_code=state.error_code or Code.NODE_FAILED,
                    error_message=state.error_message or "a node failed",
                )
            ]
        return [FlowFinished()]
    node = definition.node(state.cursor)
    previous = state.last_execution_of(state.cursor)
    attempt = (
        1 if previous is None or previous.status is NodeStatus.FINISHED else previous.attempt + 1
    )
    return [
        NodeStarted(
            node_id=node_id_for(state.flow_id, len(state.nodes) + 1),
            key=state.cursor,
            name=node.name,
            kind=node.kind.value,
            attempt=attempt,
            adopts=_adopted(state, node, previous),
            queue=node.queue,
        )
    ]


def _adopted(state: FlowState, node: NodeDefinition, previous: NodeExecution | None) -> str | None:
    """A node that runs children, run again after it failed (a retry), takes over the
    children of its failed execution: only the failed ones run again."""
    fan = state.fan
    if node.kind not in CHILD_KINDS or previous is None or previous.status is not NodeStatus.ERROR:
        return None
    return previous.node_id if fan is not None and fan.node_id == previous.node_id else None


def canceled(state: FlowState, command: RecordCanceled) -> list[FlowEvent]:
    """The running node was interrupted because the flow is being canceled: the flow ends."""
    _running(state, command.node_id)
    return [FlowCanceled(reason=state.reason, node_id=command.node_id)]


def _running(state: FlowState, node_id: str) -> NodeExecution:
    running = state.running_node
    if running is None or running.node_id != node_id:
        raise StaleOutcome(f"node {node_id} is not running in workflow {state.flow_id}")
    return running


def interrupt(
    state: FlowState, command: Interrupt, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    running = _running(state, command.node_id)
    if state.status is FlowStatus.CANCELING:
        return [FlowCanceled(reason=state.reason, node_id=running.node_id)]
    node = definition.node(running.key)
    lost = _times_lost(state, running)
    message = (
        "the worker running the node was lost; the node runs again"
        if lost <= node.max_interruptions
        else f"the worker running the node was lost {lost} times in a row; "
        "the node does not run again"
    )
    common = {"node_id": running.node_id, "error_code": Code.NODE_INTERRUPTED,
              "error_message": message}  # fmt: skip
    return _interrupted(state, running, node, common, now)


def _times_lost(state: FlowState, running: NodeExecution) -> int:
    """How many times in a row the running node's worker has been lost, this time included."""
    lost = 1
    for earlier in reversed(state.nodes[:-1]):
        if earlier.key != running.key or earlier.error_code != Code.NODE_INTERRUPTED:
            break
        lost += 1
    return lost


def _interrupted(
    state: FlowState,
    running: NodeExecution,
    node: NodeDefinition,
    common: dict[str, Any],
    now: datetime,
) -> list[FlowEvent]:
    """A node whose worker was lost runs again (at least once), unless that has happened more
    than ``max_interruptions`` times in a row: a node that kills its worker every time must not
    loop forever. Then it fails for good and the flow takes its fail transition (the retry
    policy is for the executor's own failures)."""
    if _times_lost(state, running) <= node.max_interruptions:
        return [NodeFailed(**common, will_retry=True, retry_at=now)]
    if node.fail == PAUSE:
        return [NodeFailed(**common, pause=True)]
    return [NodeFailed(**common, next=node.fail or None)]


def submitted(
    state: FlowState, command: RecordSubmitted, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    running = _running(state, command.node_id)
    node = definition.node(running.key)
    if node.kind is not NodeKind.POLLING or running.operation_id is not None:
        raise StaleOutcome(f"node {command.node_id} is not waiting for an operation id")
    return [
        NodeOperationSubmitted(
            node_id=running.node_id,
            operation_id=command.operation_id,
            next_poll_at=now + timedelta(seconds=node.poll_interval),
            poll_deadline=now + timedelta(seconds=node.poll_deadline),
            context_changes=dict(command.changes),
            context_removed=list(command.removed),
        )
    ]


def waiting(
    state: FlowState, command: RecordWaiting, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    running = _running(state, command.node_id)
    node = definition.node(running.key)
    if node.kind not in WAITING_KINDS or running.waiting:
        raise StaleOutcome(f"node {command.node_id} is not about to wait")
    timer = node.kind is NodeKind.TIMER
    if timer and command.wake_at is None:
        raise ValueError("a timer node waits until a time")
    deadline = None
    if not timer and node.deadline is not None:
        deadline = now + timedelta(seconds=node.deadline)
    awaited = None
    if node.event is not None:
        context = {**state.context, **command.changes}  # as the fold will have it
        for key in command.removed:
            context.pop(key, None)
        try:
            awaited = node.event.rendered(context)
        except NotRendered as exc:
            message = f"the node cannot wait for its event: {exc}"
            missing = RecordFailure(
                running.node_id, Code.EVENT_MATCH_MISSING, message, message + "\n",
                changes=command.changes, removed=command.removed,
            )  # fmt: skip
            return failed(state, missing, definition, now)
    return [
        NodeWaiting(
            node_id=running.node_id,
            wake_at=command.wake_at if timer else None,
            deadline=deadline,
            callback=None if timer else command.callback,
            event=awaited,
            context_changes=dict(command.changes),
            context_removed=list(command.removed),
        )
    ]


def wake(
    state: FlowState, command: Wake, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    running = _running(state, command.node_id)
    if not running.waiting:
        raise StaleOutcome(f"node {command.node_id} is not waiting")
    if running.wake_at is not None and running.wake_at <= now:
        waited = f"Waited until {running.wake_at.isoformat()}.\n"
        return succeeded(state, RecordSuccess(running.node_id, result=waited), definition)
    if running.deadline is not None and running.deadline <= now:
        message = f"no callback came before the deadline ({running.deadline.isoformat()})"
        timeout = RecordFailure(running.node_id, Code.CALLBACK_TIMEOUT, message, message + "\n")
        return failed(state, timeout, definition, now)
    return []  # not yet


def succeeded(
    state: FlowState, command: RecordSuccess, definition: WorkflowDefinition
) -> list[FlowEvent]:
    running = _running(state, command.node_id)
    node = definition.node(running.key)
    return [
        NodeSucceeded(
            node_id=running.node_id,
            result=command.result,
            parameters=command.parameters,
            context_changes=dict(command.changes),
            context_removed=list(command.removed),
            next=node.success or None,
        )
    ]


def failed(
    state: FlowState, command: RecordFailure, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    running = _running(state, command.node_id)
    node = definition.node(running.key)
    common: dict[str, Any] = {
        "node_id": running.node_id,
        "error_code": command.code,
        "error_message": command.message,
        "result": command.result,
        "parameters": command.parameters,
        "context_changes": dict(command.changes),
        "context_removed": list(command.removed),
    }
    if command.code == Code.NODE_INTERRUPTED:
        return _interrupted(state, running, node, common, now)
    if running.series < node.retry.max_attempts:
        delay = timedelta(seconds=node.retry.delay(running.series))
        return [NodeFailed(**common, will_retry=True, retry_at=now + delay)]
    if node.fail == PAUSE:
        return [NodeFailed(**common, pause=True)]
    return [NodeFailed(**common, next=node.fail or None)]


CHILDREN_RECHECK = timedelta(seconds=60)
"""A node waiting for its children is woken by each child's end (the child's append makes
the parent's row due); it is also looked at this often, in case a wake-up was missed."""


RETRYING_RECHECK = timedelta(seconds=5)


def _children_due(state: FlowState, fan: Fan, now: datetime) -> datetime | None:
    if state.status is FlowStatus.STOPPED:
        return None if fan.stopped else now  # the children are yet to be told to stop
    if state.status is not FlowStatus.PROCESSING:
        return None
    if fan.retrying:
        # The drive that took the children over runs the failed ones again at once; it waits
        # only for those the failed node canceled to end (their ends wake it).
        return now + RETRYING_RECHECK
    if fan.stopped or fan.total is None:
        return now  # children to resume or to start
    if fan.started < fan.total and fan.running < fan.limit:
        return now
    return now + CHILDREN_RECHECK


def due_at(state: FlowState, now: datetime) -> datetime | None:
    """When the reactor should next look at the flow; None when nothing is left to do.

    A flow with a running node stays due: its worker holds a lease, and if that worker is
    lost, whoever claims the row after the lease expires finds the node interrupted.
    """
    if state.terminal or state.status is FlowStatus.INITIALIZING:
        return None
    running = state.running_node
    if running is not None:
        if state.status is FlowStatus.CANCELING:
            return now
        fan = state.fan
        if fan is not None and fan.node_id == running.node_id:
            return _children_due(state, fan, now)
        if running.waiting:
            # Nobody runs a waiting node: look at it when its time comes (a callback without
            # a deadline: never; an operator's command or its completion makes it due).
            return running.wake_at or running.deadline
        if running.next_poll_at is not None:
            return running.next_poll_at
        return now
    if state.status is FlowStatus.STOPPED:
        return None
    last = state.last_node
    if last is not None and last.will_retry and last.retry_at is not None:
        return max(now, last.retry_at) if state.status is FlowStatus.PROCESSING else now
    return now
