"""A schedule's state, folded from its stream. Pure: ``at`` is each event's recorded time."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.schedules.events import (
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleEvent,
    ScheduleFired,
    SchedulePaused,
    ScheduleQueued,
    ScheduleResumed,
    ScheduleSkipped,
    ScheduleUpdated,
)
from app.schedules.spec import ScheduleSpec
from app.schedules.timing import Timing

_JUST_BEFORE = timedelta(microseconds=1)


class ScheduleStatus(enum.StrEnum):
    ACTIVE = "Active"
    PAUSED = "Paused"
    DELETED = "Deleted"

    @property
    def deleted(self) -> bool:
        return self is ScheduleStatus.DELETED


@dataclass(frozen=True, slots=True)
class ScheduleState:
    schedule_id: str
    tenant_id: str
    spec: ScheduleSpec
    status: ScheduleStatus
    created_at: datetime
    updated_at: datetime
    version: int
    incarnation: int
    """The version of the ScheduleCreated this state folds from: a schedule deleted and made
    again under the same id is another incarnation, whose fires start other flows."""
    considered_until: datetime
    """Fire times up to here are settled (fired, skipped, queued) or were never to fire."""
    last_fire_at: datetime | None = None
    last_flow_id: str | None = None
    queued: datetime | None = None
    fires: int = 0
    skipped: int = 0

    def timing(self) -> Timing:
        return self.spec.timing()


def evolve(state: ScheduleState | None, event: ScheduleEvent, version: int, at: datetime
           ) -> ScheduleState:  # fmt: skip
    if isinstance(event, ScheduleCreated):
        if state is not None and state.status is not ScheduleStatus.DELETED:
            raise ValueError(f"schedule {event.schedule_id} created twice")
        spec = ScheduleSpec.model_validate(event.spec)
        start = at if spec.startAt is None else max(at, spec.startAt - _JUST_BEFORE)
        return ScheduleState(
            schedule_id=event.schedule_id,
            tenant_id=event.tenant_id,
            spec=spec,
            status=ScheduleStatus.PAUSED if event.paused else ScheduleStatus.ACTIVE,
            created_at=at,
            updated_at=at,
            version=version,
            incarnation=version,
            considered_until=start,
        )
    if state is None:
        raise ValueError(f"a schedule's history starts with ScheduleCreated, not {event}")
    changed = dataclasses.replace(state, version=version, updated_at=at)
    until = state.considered_until
    match event:
        case ScheduleUpdated():
            # Fire times of the new settings before now are not made up for.
            spec = ScheduleSpec.model_validate(event.spec)
            return dataclasses.replace(changed, spec=spec, considered_until=max(until, at))
        case SchedulePaused():
            return dataclasses.replace(changed, status=ScheduleStatus.PAUSED)
        case ScheduleResumed():
            # The fires that fell while paused are not made up for (no backfill).
            return dataclasses.replace(
                changed, status=ScheduleStatus.ACTIVE, considered_until=max(until, at)
            )
        case ScheduleDeleted():
            return dataclasses.replace(changed, status=ScheduleStatus.DELETED, queued=None)
        case ScheduleFired():
            return dataclasses.replace(
                changed,
                considered_until=max(until, event.fire_time),
                last_fire_at=event.fire_time,
                last_flow_id=event.flow_id,
                queued=None if event.queued else state.queued,
                fires=state.fires + 1,
            )
        case ScheduleSkipped():
            return dataclasses.replace(
                changed,
                skipped=state.skipped + event.count,
                considered_until=max(until, event.last),
            )
        case ScheduleQueued():
            return dataclasses.replace(
                changed, queued=event.fire_time, considered_until=max(until, event.fire_time)
            )
    raise ValueError(f"unknown schedule event {event}")


def fold(history: Iterable[tuple[ScheduleEvent, int, datetime]]) -> ScheduleState | None:
    state: ScheduleState | None = None
    for event, version, at in history:
        state = evolve(state, event, version, at)
    return state
