"""Decisions on the commands of people and clients: operators' (create, context, start, stop,
cancel, retry), refused with the seed's codes, and a callback's completion. Pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowlog.workflow.commands import (
    CancelFlow,
    CompleteCallback,
    CreateFlow,
    RecordFailure,
    RecordSuccess,
    RetryFlow,
    SetContext,
    StopFlow,
)
from flowlog.workflow.definition import NodeKind, WorkflowDefinition
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.events import (
    CallbackReceived,
    CancelRequested,
    ContextSet,
    FlowCanceled,
    FlowCreated,
    FlowEvent,
    FlowResumed,
    FlowRetried,
    FlowStarted,
    FlowStopped,
)
from flowlog.workflow.executor import DEFAULT_SUCCESS_TEXT, check_json
from flowlog.workflow.node_decisions import failed, succeeded
from flowlog.workflow.state import MAX_PRIORITY, FlowState, FlowStatus, NodeStatus


def create(
    state: FlowState | None, command: CreateFlow, definition: WorkflowDefinition
) -> list[FlowEvent]:
    if state is not None:
        raise WorkflowError(Code.CREATE_FAILED, f"workflow {command.flow_id} already exists")
    if not 0 <= command.priority <= MAX_PRIORITY:
        raise WorkflowError(Code.BAD_INPUT, f"a priority is 0 to {MAX_PRIORITY}")
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
            parent=command.parent,
            entry=command.entry,
            priority=command.priority,
        )
    ]


def set_context(state: FlowState, command: SetContext) -> list[FlowEvent]:
    if state.terminal:
        raise WorkflowError(
            Code.CONTEXT_FAILED, f"workflow {state.flow_id} is {state.status}: its context is final"
        )
    for key, value in command.changes.items():
        _check_context(key, value, Code.CONTEXT_FAILED)
    if not command.changes and not command.removed:
        return []
    return [ContextSet(changes=dict(command.changes), removed=list(command.removed))]


def start(state: FlowState) -> list[FlowEvent]:
    if state.terminal or state.status is FlowStatus.CANCELING:
        raise WorkflowError(
            Code.START_FAILED, f"workflow {state.flow_id} is {state.status} and cannot start"
        )
    if state.status is FlowStatus.INITIALIZING:
        return [FlowStarted()]
    if state.status is FlowStatus.STOPPED:
        return [FlowResumed()]
    return []  # already Processing


def stop(state: FlowState, command: StopFlow) -> list[FlowEvent]:
    if state.terminal or state.status is FlowStatus.CANCELING:
        raise WorkflowError(
            Code.STOP_FAILED, f"workflow {state.flow_id} is {state.status} and cannot stop"
        )
    if state.status is FlowStatus.STOPPED:
        return []
    return [FlowStopped(reason=command.reason)]


def cancel(state: FlowState, command: CancelFlow) -> list[FlowEvent]:
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


def retry(state: FlowState, command: RetryFlow) -> list[FlowEvent]:
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
    elif command.canceled and state.status is FlowStatus.CANCELED and _canceled_at(state):
        from_key = _canceled_at(state)
    else:
        raise WorkflowError(
            Code.RETRY_FAILED,
            f"workflow {state.flow_id} is {state.status}: only a flow that ended in Error or "
            "stopped on a failed node can be retried",
        )
    events: list[FlowEvent] = []
    retried = FlowRetried(from_key=from_key)
    if command.changes or command.removed:
        for key, value in command.changes.items():
            _check_context(key, value, Code.RETRY_FAILED)
        events.append(ContextSet(changes=dict(command.changes), removed=list(command.removed)))
        fan = state.fan
        if fan is not None and fan.key == from_key:
            # A map or parallel node runs its failed children again: each gets the patch too.
            retried = FlowRetried(from_key=from_key, child_changes=dict(command.changes),
                                  child_removed=list(command.removed))  # fmt: skip
    return [*events, retried]


def _canceled_at(state: FlowState) -> str:
    """The node a canceled flow was canceled at (or before): where it runs again from."""
    last = state.last_node
    if last is not None and last.status is NodeStatus.CANCELED:
        return last.key
    return state.cursor or ""


def complete(
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
        return [received, *succeeded(state, success, definition)]
    message = command.message or "the callback reported a failure"
    failure = RecordFailure(
        running.node_id,
        Code.CALLBACK_FAILED,
        message,
        result=_line(command.result) + _line(message),
        changes=command.changes,
        removed=command.removed,
    )
    return [received, *failed(state, failure, definition, now)]


def _line(text: str) -> str:
    """Result text as executors record it: lines ending in a newline."""
    return text if not text or text.endswith("\n") else text + "\n"


def _check_context(key: str, value: Any, code: Code) -> None:
    try:
        check_json(key, value)
    except TypeError as exc:
        raise WorkflowError(code, str(exc)) from None
