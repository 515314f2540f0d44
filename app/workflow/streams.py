"""The workflow's streams: their names (a flow's, a definition's), and a flow's stored events
decoded and folded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowlog.eventstore import RecordedEvent
from flowlog.workflow.events import FlowEvent, decode
from flowlog.workflow.fold import evolve_owned
from flowlog.workflow.state import FlowState

FLOW_STREAM = "flow-"
DEFINITION_STREAM = "definition-"
DEFINITION_REGISTERED = "DefinitionRegistered"


def definition_owner(registered: Mapping[str, Any]) -> str | None:
    """The tenant a DefinitionRegistered event gives its name to: None for a definition from
    code (shared); for one registered over REST, its tenant ("" when the server was open, or
    when it was recorded before definitions had owners: shared too)."""
    if "spec" not in registered["definition"]:
        return None
    tenant = registered.get("tenant", "")
    return tenant if isinstance(tenant, str) else ""


def flow_stream(flow_id: str) -> str:
    return FLOW_STREAM + flow_id


def decode_recorded(stored: RecordedEvent) -> FlowEvent:
    return decode(stored.type, stored.data, stored.metadata)


def fold_recorded(recorded: Sequence[RecordedEvent]) -> FlowState | None:
    """The state of a flow from its stored events (None for an empty stream)."""
    state: FlowState | None = None
    for stored in recorded:
        state = evolve_owned(state, decode_recorded(stored), stored.recorded_at)
    return state
