"""The events of a schedule's stream (``schedule-<id>``): its changes, and each fire."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

JsonObject = dict[str, Any]
STREAM = "schedule-"


def schedule_stream(schedule_id: str) -> str:
    return STREAM + schedule_id


class ScheduleEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduleCreated(ScheduleEvent):
    type: Literal["ScheduleCreated"] = "ScheduleCreated"
    schedule_id: str
    tenant_id: str = ""
    spec: JsonObject
    paused: bool = False
    effective_at: datetime | None = None
    """When the change was decided: fire times up to it are not the schedule's. Recorded (not
    taken from the append's time) so that every fold, the row's and the log's, agrees."""


class ScheduleUpdated(ScheduleEvent):
    type: Literal["ScheduleUpdated"] = "ScheduleUpdated"
    spec: JsonObject
    effective_at: datetime | None = None
    """As ScheduleCreated's (when the new timing applies from, if the timing changed)."""


class SchedulePaused(ScheduleEvent):
    type: Literal["SchedulePaused"] = "SchedulePaused"
    reason: str = ""


class ScheduleResumed(ScheduleEvent):
    type: Literal["ScheduleResumed"] = "ScheduleResumed"
    reason: str = ""
    effective_at: datetime | None = None
    """As ScheduleCreated's: the fire times while paused are not made up for."""


class ScheduleDeleted(ScheduleEvent):
    type: Literal["ScheduleDeleted"] = "ScheduleDeleted"
    reason: str = ""


class ScheduleFired(ScheduleEvent):
    """A fire: the flow it starts has this id (derived from the schedule and the fire time, so
    that one fire can never start two flows)."""

    type: Literal["ScheduleFired"] = "ScheduleFired"
    fire_time: datetime
    flow_id: str
    queued: bool = False
    """The fire waited in the queue for the previous flow to end (overlap "queue")."""


class ScheduleSkipped(ScheduleEvent):
    """Fires that started no flow: ``count`` of them, from ``first`` to ``last``. Missed (no
    scheduler ran), skipped for the flow still running (overlap), or refused: the REST create
    would refuse the fire's flow (``error`` says why; settings recorded before they were
    checked against its limits)."""

    type: Literal["ScheduleSkipped"] = "ScheduleSkipped"
    first: datetime
    last: datetime
    count: int
    why: Literal["missed", "overlap", "refused"]
    error: str | None = Field(None, exclude_if=lambda v: v is None)


class ScheduleQueued(ScheduleEvent):
    """A fire waits for the previous flow of the schedule to end (overlap "queue")."""

    type: Literal["ScheduleQueued"] = "ScheduleQueued"
    fire_time: datetime


AnyScheduleEvent = Annotated[
    ScheduleCreated | ScheduleUpdated | SchedulePaused | ScheduleResumed | ScheduleDeleted
    | ScheduleFired | ScheduleSkipped | ScheduleQueued,
    Field(discriminator="type"),
]  # fmt: skip
_ADAPTER: TypeAdapter[AnyScheduleEvent] = TypeAdapter(AnyScheduleEvent)


def encode(event: ScheduleEvent) -> tuple[str, JsonObject]:
    data = event.model_dump(mode="json", exclude={"type"})
    return str(getattr(event, "type")), data  # noqa: B009 - every event has its own Literal


def decode(event_type: str, data: Mapping[str, Any]) -> ScheduleEvent:
    return _ADAPTER.validate_python({**data, "type": event_type})
