"""Checking a new version of a definition against stored histories, before deploying it.

Every event the engine decided from the definition (a node started, a node's outcome with the
node that comes next, a polling node's submission, the flow's end) is decided again, from the
state just before it, by the new version; a flow diverges at the first event the new version
would not have recorded. Operators' commands (start, stop, cancel, context, retry) do not
depend on the definition and are replayed as they were. Pure: the caller reads the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowlog.eventstore import RecordedEvent
from flowlog.workflow.commands import (
    Advance,
    Command,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RecordWaiting,
)
from flowlog.workflow.decide import decide
from flowlog.workflow.definition import WorkflowDefinition
from flowlog.workflow.errors import StaleOutcome, WorkflowError
from flowlog.workflow.events import (
    FlowEvent,
    FlowFailed,
    FlowFinished,
    NodeFailed,
    NodeOperationSubmitted,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
    encode,
)
from flowlog.workflow.fold import evolve
from flowlog.workflow.state import FlowState
from flowlog.workflow.streams import decode_recorded

# Times in events come from the deciding process's clock, not from the definition.
_CLOCK_FIELDS = frozenset({"retry_at", "next_poll_at", "poll_deadline", "deadline"})


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a history and the new version part: the event recorded, and what the new
    version decides instead (an event, nothing, or a refusal)."""

    version: int
    recorded: str
    now: str


def first_divergence(
    recorded: Sequence[RecordedEvent], definition: WorkflowDefinition
) -> Divergence | None:
    """The first event of the flow's stored history that ``definition`` would not decide."""
    return divergence_of([(decode_recorded(e), e.recorded_at) for e in recorded], definition)


def divergence_of(
    history: Iterable[tuple[FlowEvent, datetime]], definition: WorkflowDefinition
) -> Divergence | None:
    """The first event of ``history`` (events and their times) that ``definition`` would not
    decide."""
    state: FlowState | None = None
    for event, at in history:
        if state is not None:
            command = _command_behind(event)
            if command is not None:
                redecided = _redecide(state, command, definition, at)
                if not (isinstance(redecided, FlowEvent) and _same(redecided, event)):
                    return Divergence(state.version + 1, describe(event), _described(redecided))
        state = evolve(state, event, at)
    return None


def _command_behind(event: FlowEvent) -> Command | None:
    """The reactor's command that decided ``event``; None for what the definition does not
    decide (operators' commands, cancellation)."""
    match event:
        case NodeStarted() | FlowFinished() | FlowFailed():
            return Advance()
        case NodeSucceeded():
            return RecordSuccess(event.node_id, event.result, event.parameters,
                                 event.context_changes, event.context_removed)  # fmt: skip
        case NodeFailed():
            return RecordFailure(event.node_id, event.error_code, event.error_message,
                                 event.result, event.parameters, event.context_changes,
                                 event.context_removed)  # fmt: skip
        case NodeOperationSubmitted():
            return RecordSubmitted(event.node_id, event.operation_id, event.context_changes,
                                   event.context_removed)  # fmt: skip
        case NodeWaiting():
            return RecordWaiting(event.node_id, event.wake_at, event.callback,
                                 event.context_changes, event.context_removed)  # fmt: skip
    return None


def _redecide(
    state: FlowState, command: Command, definition: WorkflowDefinition, at: datetime
) -> FlowEvent | str | None:
    last = state.last_node
    if isinstance(command, Advance) and last is not None and last.retry_at is not None:
        # A retry was started when due: decide at that time whatever the clocks said.
        at = max(at, last.retry_at)
    try:
        events = decide(state, command, definition, at)
    except KeyError as exc:
        return f"node key {exc} does not exist in the new version"
    except (WorkflowError, StaleOutcome, ValueError) as exc:
        return f"refused: {exc}"
    return events[0] if events else None


def _same(new: FlowEvent, old: FlowEvent) -> bool:
    if new.type != old.type:  # type: ignore[attr-defined]
        return False
    return _comparable(new) == _comparable(old)


def _comparable(event: FlowEvent) -> dict[str, Any]:
    return {k: v for k, v in encode(event)[1].items() if k not in _CLOCK_FIELDS}


def _described(outcome: FlowEvent | str | None) -> str:
    if outcome is None:
        return "nothing (the flow would wait)"
    if isinstance(outcome, str):
        return outcome
    return describe(outcome)


def describe(event: FlowEvent) -> str:
    """An event in a line: its type and the fields the definition decides."""
    fields = ", ".join(f"{k}={v!r}" for k, v in sorted(_comparable(event).items())
                       if k not in {"node_id", "context_changes", "context_removed", "result",
                                    "parameters"})  # fmt: skip
    return f"{event.type} ({fields})" if fields else str(event.type)  # type: ignore[attr-defined]
