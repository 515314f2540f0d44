"""A flow's history as stored: recorded events decoded and folded; stream naming."""

from __future__ import annotations

from collections.abc import Sequence

from app.workflow.events import FlowEvent, decode
from app.workflow.state import FlowState, evolve
from eventstore import RecordedEvent

FLOW_STREAM = "flow-"
DEFINITION_STREAM = "definition-"
DEFINITION_REGISTERED = "DefinitionRegistered"


def flow_stream(flow_id: str) -> str:
    return FLOW_STREAM + flow_id


def decode_recorded(stored: RecordedEvent) -> FlowEvent:
    return decode(stored.type, stored.data, stored.metadata)


def fold_recorded(recorded: Sequence[RecordedEvent]) -> FlowState | None:
    """The state of a flow from its stored events (None for an empty stream)."""
    state: FlowState | None = None
    for stored in recorded:
        state = evolve(state, decode_recorded(stored), stored.recorded_at)
    return state
