"""Decisions: ``decide(state, command, definition, now) -> events``, or a refusal. Pure.

Operators' commands (create, context, start, stop, cancel, retry) are refused with the seed's
codes and change nothing. The reactor's commands (advance, record an outcome, interrupt) are
refused with ``StaleOutcome`` when the node they speak of is no longer the running one: a
worker that lost its lease, or a node already recorded, must not change anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flowlog.workflow.definition import (
    PAUSE,
    WAITING_KINDS,
    NodeDefinition,
    NodeKind,
    WorkflowDefinition,
)
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.events import (
    CallbackReceived,
    CancelRequested,
    ContextSet,
    FlowArchived,
    FlowCanceled,
    FlowCreated,
    FlowEvent,
    FlowFailed,
    FlowFinished,
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
from flowlog.workflow.executor import DEFAULT_SUCCESS_TEXT, check_json
from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution, NodeStatus, evolve


class StaleOutcome(Exception):
    """The command speaks of a node that is not the running node (any more)."""


# -- operators' commands ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateFlow:
    flow_id: str
    biz_id: str
    biz_type: str
    tenant_id: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetContext:
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class StartFlow:
    pass


@dataclass(frozen=True, slots=True)
class StopFlow:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CancelFlow:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RetryFlow:
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


# -- the reactor's commands ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Advance:
    """Move forward when no node runs: start the next node, or end the flow."""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The running node lost its worker (crash, lost lease): it runs again."""

    node_id: str


@dataclass(frozen=True, slots=True)
class RecordSubmitted:
    node_id: str
    operation_id: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class RecordSuccess:
    node_id: str
    result: str = ""
    parameters: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class RecordFailure:
    node_id: str
    code: int
    message: str
    result: str = ""
    parameters: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class RecordWaiting:
    """A timer or callback node's action ran: the node waits (a timer until ``wake_at``)."""

    node_id: str
    wake_at: datetime | None = None
    callback: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Wake:
    """A waiting node's time came: a timer moves on, a callback past its deadline fails."""

    node_id: str


@dataclass(frozen=True, slots=True)
class CompleteCallback:
    """Someone outside completes a callback node (by its token, or an operator by ids)."""

    node_id: str
    succeeded: bool
    by: str
    callback: str | None = None
    reason: str = ""
    result: str = ""
    message: str = ""
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class ArchiveFlow:
    """Seal an ended flow for archive ``archive_id`` (retention, app/archive/)."""

    archive_id: str


@dataclass(frozen=True, slots=True)
class RecordCanceled:
    """The running node was interrupted because the flow is being canceled."""

    node_id: str


Command = (
    CreateFlow
    | SetContext
    | StartFlow
    | StopFlow
    | CancelFlow
    | RetryFlow
    | Advance
    | Interrupt
    | RecordSubmitted
    | RecordSuccess
    | RecordFailure
    | RecordCanceled
    | RecordWaiting
    | Wake
    | CompleteCallback
    | ArchiveFlow
)


def node_id_for(flow_id: str, sequence: int) -> str:
    """Node execution ids are derived, not random: the same decision, the same id."""
    return f"{flow_id}.{sequence}"


def decide(
    state: FlowState | None,
    command: Command,
    definition: WorkflowDefinition | None,
    now: datetime,
) -> list[FlowEvent]:
    """The events that carry out ``command``; [] when there is nothing to do.

    Operators' commands other than CreateFlow need no ``definition`` (None is fine); the
    reactor's commands and CreateFlow do.
    """
    if isinstance(command, CreateFlow):
        return _create(state, command, _needed(definition))
    if state is None:
        raise WorkflowError(Code.FLOW_NOT_FOUND, "the flow does not exist")
    if state.archived:
        raise WorkflowError(
            Code.FLOW_ARCHIVED, f"workflow {state.flow_id} is archived: it takes no command"
        )
    match command:
        case SetContext():
            return _set_context(state, command)
        case StartFlow():
            return _start(state)
        case StopFlow():
            return _stop(state, command)
        case CancelFlow():
            return _cancel(state, command)
        case RetryFlow():
            return _retry(state, command)
        case Advance():
            return _advance(state, _needed(definition), now)
        case Interrupt():
            return _interrupt(state, command, _needed(definition), now)
        case RecordSubmitted():
            return _submitted(state, command, _needed(definition), now)
        case RecordSuccess():
            return _succeeded(state, command, _needed(definition))
        case RecordFailure():
            return _failed(state, command, _needed(definition), now)
        case RecordCanceled():
            _running(state, command.node_id)
            return [FlowCanceled(reason=state.reason, node_id=command.node_id)]
        case RecordWaiting():
            return _waiting(state, command, _needed(definition), now)
        case Wake():
            return _wake(state, command, _needed(definition), now)
        case CompleteCallback():
            return _complete(state, command, _needed(definition), now)
        case ArchiveFlow():
            if not state.terminal:
                raise WorkflowError(
                    Code.FLOW_ARCHIVED,
                    f"workflow {state.flow_id} is {state.status.value}: only an ended flow "
                    "is archived",
                )
            return [FlowArchived(archive_id=command.archive_id)]
    raise TypeError(f"unknown command {command!r}")


def _needed(definition: WorkflowDefinition | None) -> WorkflowDefinition:
    if definition is None:
        raise TypeError("this command needs the flow's definition")
    return definition


def decide_and_advance(
    state: FlowState | None, command: Command, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    """``decide``, then whatever follows at once in the same append: after an outcome the
    next node starts (or the flow ends) without a round trip through the queue."""
    events = decide(state, command, definition, now)
    if not events or isinstance(command, Advance):
        return events
    after = state
    for event in events:
        after = evolve(after, event, now)
    assert after is not None
    return events + _advance(after, definition, now)


# -- operators' commands ---------------------------------------------------------------------


def _create(
    state: FlowState | None, command: CreateFlow, definition: WorkflowDefinition
) -> list[FlowEvent]:
    if state is not None:
        raise WorkflowError(Code.CREATE_FAILED, f"workflow {command.flow_id} already exists")
    for key, value in command.context.items():
        _check_context(key, value, Code.CREATE_FAILED)
    return [
        FlowCreated(
            flow_id=command.flow_id,
            name=definition.name,
            biz_id=command.biz_id,
            biz_type=command.biz_type,
            definition_version=definition.version,
            tenant_id=command.tenant_id,
            context=dict(command.context),
        )
    ]


def _set_context(state: FlowState, command: SetContext) -> list[FlowEvent]:
    if state.terminal:
        raise WorkflowError(
            Code.CONTEXT_FAILED, f"workflow {state.flow_id} is {state.status}: its context is final"
        )
    for key, value in command.changes.items():
        _check_context(key, value, Code.CONTEXT_FAILED)
    if not command.changes and not command.removed:
        return []
    return [ContextSet(changes=dict(command.changes), removed=list(command.removed))]


def _start(state: FlowState) -> list[FlowEvent]:
    if state.terminal or state.status is FlowStatus.CANCELING:
        raise WorkflowError(
            Code.START_FAILED, f"workflow {state.flow_id} is {state.status} and cannot start"
        )
    if state.status is FlowStatus.INITIALIZING:
        return [FlowStarted()]
    if state.status is FlowStatus.STOPPED:
        return [FlowResumed()]
    return []  # already Processing


def _stop(state: FlowState, command: StopFlow) -> list[FlowEvent]:
    if state.terminal or state.status is FlowStatus.CANCELING:
        raise WorkflowError(
            Code.STOP_FAILED, f"workflow {state.flow_id} is {state.status} and cannot stop"
        )
    if state.status is FlowStatus.STOPPED:
        return []
    return [FlowStopped(reason=command.reason)]


def _cancel(state: FlowState, command: CancelFlow) -> list[FlowEvent]:
    if state.terminal:
        raise WorkflowError(
            Code.CANCEL_FAILED, f"workflow {state.flow_id} is {state.status} and cannot cancel"
        )
    if state.status is FlowStatus.CANCELING:
        return []
    requested = CancelRequested(reason=command.reason)
    running = state.running_node
    if running is None:
        return [requested, FlowCanceled(reason=command.reason)]
    # A node runs (or is being polled): the reactor interrupts it, then records the end.
    return [requested]


def _retry(state: FlowState, command: RetryFlow) -> list[FlowEvent]:
    last = state.last_node
    if state.status is FlowStatus.ERROR and state.failed_key is not None:
        from_key = state.failed_key
    elif (
        state.status is FlowStatus.STOPPED
        and last is not None
        and last.status is NodeStatus.ERROR
        and not last.will_retry
    ):
        from_key = last.key
    else:
        raise WorkflowError(
            Code.RETRY_FAILED,
            f"workflow {state.flow_id} is {state.status}: only a flow that ended in Error or "
            "stopped on a failed node can be retried",
        )
    events: list[FlowEvent] = []
    if command.changes or command.removed:
        for key, value in command.changes.items():
            _check_context(key, value, Code.RETRY_FAILED)
        events.append(ContextSet(changes=dict(command.changes), removed=list(command.removed)))
    return [*events, FlowRetried(from_key=from_key)]


# -- the reactor's commands ------------------------------------------------------------------


def _advance(state: FlowState, definition: WorkflowDefinition, now: datetime) -> list[FlowEvent]:
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
        )
    ]


def _running(state: FlowState, node_id: str) -> NodeExecution:
    running = state.running_node
    if running is None or running.node_id != node_id:
        raise StaleOutcome(f"node {node_id} is not running in workflow {state.flow_id}")
    return running


def _interrupt(
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


def _submitted(
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


def _waiting(
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
    return [
        NodeWaiting(
            node_id=running.node_id,
            wake_at=command.wake_at if timer else None,
            deadline=deadline,
            callback=None if timer else command.callback,
            context_changes=dict(command.changes),
            context_removed=list(command.removed),
        )
    ]


def _wake(
    state: FlowState, command: Wake, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    running = _running(state, command.node_id)
    if not running.waiting:
        raise StaleOutcome(f"node {command.node_id} is not waiting")
    if running.wake_at is not None and running.wake_at <= now:
        waited = f"Waited until {running.wake_at.isoformat()}.\n"
        return _succeeded(state, RecordSuccess(running.node_id, result=waited), definition)
    if running.deadline is not None and running.deadline <= now:
        message = f"no callback came before the deadline ({running.deadline.isoformat()})"
        timeout = RecordFailure(running.node_id, Code.CALLBACK_TIMEOUT, message, message + "\n")
        return _failed(state, timeout, definition, now)
    return []  # not yet


def _complete(
    state: FlowState, command: CompleteCallback, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    running = state.running_node
    if (
        running is None
        or running.node_id != command.node_id
        or state.terminal
        or state.status is FlowStatus.CANCELING
    ):
        raise WorkflowError(
            Code.CALLBACK_REFUSED,
            f"node {command.node_id} of workflow {state.flow_id} is not waiting for a callback "
            f"(the workflow is {state.status})",
        )
    node = definition.node(running.key)
    if node.kind is not NodeKind.CALLBACK:
        raise WorkflowError(
            Code.CALLBACK_REFUSED,
            f"node {running.name} of workflow {state.flow_id} is a {node.kind.value} node, "
            "not a callback node",
        )
    if running.deadline is not None and running.deadline <= now:
        # The reactor records the timeout when it next looks; the answer must not wait on it.
        raise WorkflowError(
            Code.CALLBACK_REFUSED,
            f"the deadline of node {running.name} of workflow {state.flow_id} passed at "
            f"{running.deadline.isoformat()}",
        )
    for key, value in command.changes.items():
        _check_context(key, value, Code.BAD_INPUT)
    received = CallbackReceived(
        node_id=running.node_id,
        status="success" if command.succeeded else "fail",
        by=command.by,
        callback=command.callback,
        reason=command.reason,
    )
    if command.succeeded:
        result = command.result or DEFAULT_SUCCESS_TEXT
        success = RecordSuccess(running.node_id, result=_line(result), changes=command.changes,
                                removed=command.removed)  # fmt: skip
        return [received, *_succeeded(state, success, definition)]
    message = command.message or "the callback reported a failure"
    failure = RecordFailure(
        running.node_id,
        Code.CALLBACK_FAILED,
        message,
        result=_line(command.result) + _line(message),
        changes=command.changes,
        removed=command.removed,
    )
    return [received, *_failed(state, failure, definition, now)]


def _line(text: str) -> str:
    """Result text as executors record it: lines ending in a newline."""
    return text if not text or text.endswith("\n") else text + "\n"


def _succeeded(
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


def _failed(
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


def _check_context(key: str, value: Any, code: Code) -> None:
    try:
        check_json(key, value)
    except TypeError as exc:
        raise WorkflowError(code, str(exc)) from None
