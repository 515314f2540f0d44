"""Decisions: ``decide(state, command, definition, now) -> events``, or a refusal. Pure.

Operators' commands (create, context, start, stop, cancel, retry) are refused with the seed's
codes and change nothing. The reactor's commands (advance, record an outcome, interrupt) are
refused with ``StaleOutcome`` when the node they speak of is no longer the running one: a
worker that lost its lease, or a node already recorded, must not change anything.

The commands are in app/workflow/commands.py, the decisions on operators' commands in
app/workflow/operator_decisions.py and those on the reactor's in app/workflow/node_decisions.py;
this module picks one.
"""

from __future__ import annotations

from datetime import datetime

from flowlog.workflow import node_decisions as nodes
from flowlog.workflow import operator_decisions as operators
from flowlog.workflow import task_decisions as tasks
from flowlog.workflow.commands import (
    Advance,
    ArchiveFlow,
    CancelFlow,
    Command,
    CompleteCallback,
    CompleteTask,
    CreateFlow,
    Interrupt,
    RecordCanceled,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RecordWaiting,
    RetryFlow,
    SetContext,
    StartFlow,
    StopFlow,
    Wake,
)
from flowlog.workflow.definition import WorkflowDefinition
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.events import FlowArchived, FlowEvent
from flowlog.workflow.fold import evolve
from flowlog.workflow.state import FlowState


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
        return operators.create(state, command, _needed(definition))
    if state is None:
        raise WorkflowError(Code.FLOW_NOT_FOUND, "the flow does not exist")
    if state.archived:
        raise WorkflowError(
            Code.FLOW_ARCHIVED, f"workflow {state.flow_id} is archived: it takes no command"
        )
    match command:
        case SetContext():
            return operators.set_context(state, command)
        case StartFlow():
            return operators.start(state)
        case StopFlow():
            return operators.stop(state, command)
        case CancelFlow():
            return operators.cancel(state, command)
        case RetryFlow():
            return operators.retry(state, command)
        case Advance():
            return nodes.advance(state, _needed(definition), now)
        case Interrupt():
            return nodes.interrupt(state, command, _needed(definition), now)
        case RecordSubmitted():
            return nodes.submitted(state, command, _needed(definition), now)
        case RecordSuccess():
            return nodes.succeeded(state, command, _needed(definition))
        case RecordFailure():
            return nodes.failed(state, command, _needed(definition), now)
        case RecordCanceled():
            return nodes.canceled(state, command)
        case RecordWaiting():
            return nodes.waiting(state, command, _needed(definition), now)
        case Wake():
            return nodes.wake(state, command, _needed(definition), now)
        case CompleteCallback():
            return operators.complete(state, command, _needed(definition), now)
        case CompleteTask():
            return tasks.complete_task(state, command, _needed(definition), now)
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
    return events + nodes.advance(after, definition, now)
