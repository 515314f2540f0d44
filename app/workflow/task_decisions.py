"""Decisions on workers' answers to tasks (docs/workers.md). Pure.

A task is a node offered on a queue; a worker's answer is decided as the reactor decides an
executor's outcome (the retry policy, the fail transition, a polling node's operation and its
deadline), by the same functions. What follows at once is decided with it when no reactor has
to run it: the flow's end, or the next node when it is a task too; a node that a reactor runs
is left for a reactor to start (it must be the one to start what it runs), as is every node of
a definition with flow control (a reactor asks the database whether it may start).
"""

from __future__ import annotations

from datetime import datetime

from flowlog.workflow import node_decisions as nodes
from flowlog.workflow.commands import CompleteTask, RecordFailure, RecordSubmitted, RecordSuccess
from flowlog.workflow.definition import NodeKind, WorkflowDefinition
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.events import FlowEvent, NodeStarted
from flowlog.workflow.fold import evolve
from flowlog.workflow.state import FlowState, FlowStatus

SUCCESS, FAIL, RUNNING = "success", "fail", "running"


def gone(state: FlowState, node_id: str) -> WorkflowError:
    return WorkflowError(
        Code.TASK_GONE,
        f"node {node_id} of workflow {state.flow_id} no longer waits for this task "
        f"(the workflow is {state.status}): nothing was done",
    )


def complete_task(
    state: FlowState, command: CompleteTask, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    """The events of a worker's answer; [] when a poll found its operation still running
    before its deadline (nothing to record: the poll is offered again later)."""
    running = state.running_node
    if (
        running is None
        or running.node_id != command.node_id
        or running.queue is None
        or running.operation_id != command.operation_id
        or state.terminal
        or state.status is FlowStatus.CANCELING
    ):
        raise gone(state, command.node_id)
    node = definition.node(running.key)
    if command.status == SUCCESS:
        outcome = nodes.succeeded(state, RecordSuccess(
            running.node_id, result=command.result, parameters=command.parameters,
            changes=command.changes, removed=command.removed,
        ), definition)  # fmt: skip
    elif command.status == FAIL:
        failure = RecordFailure(
            running.node_id, command.code or Code.NODE_FAILED, command.message or "failed",
            result=command.result, parameters=command.parameters, changes=command.changes,
            removed=command.removed,
        )  # fmt: skip
        outcome = nodes.failed(state, failure, definition, now)
    elif running.operation_id is None:
        if node.kind is not NodeKind.POLLING or not command.new_operation:
            raise WorkflowError(
                Code.BAD_INPUT,
                f"node {running.name} is a {node.kind.value} node: its task ends with "
                "success or fail (running, with an operationId, submits a polling node's "
                "operation)",
            )
        submitted = RecordSubmitted(running.node_id, command.new_operation,
                                    command.changes, command.removed)  # fmt: skip
        return nodes.submitted(state, submitted, definition, now)
    elif running.poll_deadline is not None and running.poll_deadline <= now:
        message = "workflow node polling time out"
        timeout = RecordFailure(running.node_id, Code.POLLING_TIMEOUT, message, message + "\n")
        outcome = nodes.failed(state, timeout, definition, now)
    else:
        return []
    return outcome + _what_follows(state, outcome, definition, now)


def _what_follows(
    state: FlowState, outcome: list[FlowEvent], definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    after: FlowState | None = state
    for event in outcome:
        after = evolve(after, event, now)
    assert after is not None
    return no_reactor_needed(after, definition, now)


def no_reactor_needed(
    state: FlowState, definition: WorkflowDefinition, now: datetime
) -> list[FlowEvent]:
    """What follows ``state`` at once when no reactor has to do it: the flow's end, or the
    start of a node offered on a queue (a started flow whose first node is one is offered by
    its create's own append); [] when a reactor must."""
    follows = nodes.advance(state, definition, now)
    if any(isinstance(e, NodeStarted) and (e.queue is None or definition.limited)
           for e in follows):  # fmt: skip
        return []  # a reactor starts what it runs, and asks flow control first
    return follows
