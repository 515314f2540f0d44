"""A schedule's state, folded from its stream. Pure: ``at`` is each event's recorded time
(operators' changes carry the time they were decided, and the fold uses that)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flowlog.schedules.events import (
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
from flowlog.schedules.spec import timing_of
from flowlog.schedules.timing import Timing
from flowlog.wire.schedules import ScheduleSpec

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
        return timing_of(self.spec)


def evolve(state: ScheduleState | None, event: ScheduleEvent, version: int, at: datetime
           ) -> ScheduleState:  # fmt: skip
    if isinstance(event, ScheduleCreated):
        if state is not None and state.status is not ScheduleStatus.DELETED:
            raise ValueError(f"schedule {event.schedule_id} created twice")
        spec = ScheduleSpec.model_validate(event.spec)
        when = event.effective_at or at
        start = when if spec.startAt is None else max(when, spec.startAt - _JUST_BEFORE)
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
            spec = ScheduleSpec.model_validate(event.spec)
            if timing_of(spec) == timing_of(state.spec):  # a description, a template: fires go on
                return dataclasses.replace(changed, spec=spec)
            # Fire times of the new timing before the change are not made up for.
            when = event.effective_at or at
            return dataclasses.replace(changed, spec=spec, considered_until=max(until, when))
        case SchedulePaused():
            return dataclasses.replace(changed, status=ScheduleStatus.PAUSED)
        case ScheduleResumed():
            # The fires that fell while paused are not made up for (no backfill).
            when = event.effective_at or at
            return dataclasses.replace(
                changed, status=ScheduleStatus.ACTIVE, considered_until=max(until, when)
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
            # A queued fire is settled by its refusal as by its fire.
            settled = event.why == "refused" and event.first == state.queued
            return dataclasses.replace(
                changed,
                skipped=state.skipped + event.count,
                considered_until=max(until, event.last),
                queued=None if settled else state.queued,
            )
        case ScheduleQueued():
            return dataclasses.replace(
                changed, queued=event.fire_time, considered_until=max(until, event.fire_time)
            )
    raise ValueError(f"unknown schedule event {event}")


_TIMES = ("considered_until", "last_fire_at", "queued")


def snapshot(state: ScheduleState) -> dict[str, Any]:
    """The state as JSON, kept in the schedule's row (written by each append's statement), so
    that a scheduler folds only the events after it, not a stream that grows with every fire.
    Without its creation and update times: the row's columns hold those, as recorded."""
    data: dict[str, Any] = {
        "schedule_id": state.schedule_id, "tenant_id": state.tenant_id,
        "spec": state.spec.model_dump(mode="json"), "status": state.status.value,
        "version": state.version, "incarnation": state.incarnation,
        "last_flow_id": state.last_flow_id, "fires": state.fires, "skipped": state.skipped,
    }  # fmt: skip
    for name in _TIMES:
        moment = getattr(state, name)
        data[name] = None if moment is None else moment.isoformat()
    return data


def from_snapshot(data: Mapping[str, Any], created_at: datetime, updated_at: datetime
                  ) -> ScheduleState:  # fmt: skip
    times = {n: None if data[n] is None else datetime.fromisoformat(data[n]) for n in _TIMES}
    considered_until = times["considered_until"]
    assert considered_until is not None
    return ScheduleState(
        schedule_id=data["schedule_id"], tenant_id=data["tenant_id"],
        spec=ScheduleSpec.model_validate(data["spec"]), status=ScheduleStatus(data["status"]),
        created_at=created_at, updated_at=updated_at, version=data["version"],
        incarnation=data["incarnation"], considered_until=considered_until,
        last_fire_at=times["last_fire_at"], last_flow_id=data["last_flow_id"],
        queued=times["queued"], fires=data["fires"], skipped=data["skipped"],
    )  # fmt: skip
