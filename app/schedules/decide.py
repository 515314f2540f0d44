"""Decisions about schedules: operators' changes, and what a fire does. Pure.

Refusals raise WorkflowError (400 bad settings, 404 no such schedule, 409 a conflict) and
change nothing.
"""

from __future__ import annotations

import uuid
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
from flowlog.schedules.flows import FireRefused, flow_of, limit_problems
from flowlog.schedules.spec import problems_of
from flowlog.schedules.state import ScheduleState, ScheduleStatus
from flowlog.schedules.timing import due, fire_times, jitter
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.errors import Code, WorkflowError

QUEUE_CHECK = timedelta(seconds=2)
"""How often a schedule with a queued fire looks whether the previous flow has ended."""
SETTLE = timedelta(seconds=10)
"""After a fire, when a scheduler looks again if the one that fired did not say it created
the fire's flow (it was killed in between): the flow is created then."""
_FLOW_IDS = uuid.UUID("6f0d1c4e-8a51-4b7e-9a53-5c3f7e2d9b10")


def not_found(schedule_id: str) -> WorkflowError:
    return WorkflowError(Code.SCHEDULE_NOT_FOUND, f"schedule {schedule_id} does not exist")


def _check(spec: ScheduleSpec, schedule_id: str) -> None:
    # The limits only once the templates are sound: they are rendered to be measured.
    problems = problems_of(spec) or limit_problems(spec, schedule_id)
    if problems:
        raise WorkflowError(Code.BAD_INPUT, "; ".join(problems))


def create(
    state: ScheduleState | None, schedule_id: str, tenant_id: str, spec: ScheduleSpec,
    paused: bool, now: datetime,
) -> list[ScheduleEvent]:  # fmt: skip
    _check(spec, schedule_id)
    if state is not None and state.status is not ScheduleStatus.DELETED:
        raise WorkflowError(Code.SCHEDULE_FAILED, f"schedule {schedule_id} already exists")
    return [ScheduleCreated(schedule_id=schedule_id, tenant_id=tenant_id,
                            spec=spec.model_dump(mode="json"), paused=paused,
                            effective_at=now)]  # fmt: skip


def _live(state: ScheduleState | None, schedule_id: str) -> ScheduleState:
    if state is None or state.status is ScheduleStatus.DELETED:
        raise not_found(schedule_id)
    return state


def update(state: ScheduleState | None, schedule_id: str, spec: ScheduleSpec, now: datetime
           ) -> list[ScheduleEvent]:  # fmt: skip
    live = _live(state, schedule_id)
    _check(spec, schedule_id)
    if spec == live.spec:
        return []
    return [ScheduleUpdated(spec=spec.model_dump(mode="json"), effective_at=now)]


def pause(state: ScheduleState | None, schedule_id: str, reason: str) -> list[ScheduleEvent]:
    live = _live(state, schedule_id)
    return [] if live.status is ScheduleStatus.PAUSED else [SchedulePaused(reason=reason)]


def resume(
    state: ScheduleState | None, schedule_id: str, reason: str, now: datetime
) -> list[ScheduleEvent]:
    live = _live(state, schedule_id)
    if live.status is ScheduleStatus.ACTIVE:
        return []
    return [ScheduleResumed(reason=reason, effective_at=now)]


def delete(state: ScheduleState | None, schedule_id: str, reason: str) -> list[ScheduleEvent]:
    _live(state, schedule_id)
    return [ScheduleDeleted(reason=reason)]


def flow_id_for(state: ScheduleState, fire_time: datetime) -> str:
    """The id of the flow a fire starts: the same for the same fire in every process, so a
    fire can start one flow only (its stream's first append is the only one that can win)."""
    name = f"{state.schedule_id}\x00{state.incarnation}\x00{fire_time.isoformat()}"
    return str(uuid.uuid5(_FLOW_IDS, name))


def fire(state: ScheduleState, now: datetime, previous_running: bool) -> list[ScheduleEvent]:
    """What the schedule does at ``now``: the fires due (started, skipped or queued), given
    whether the flow of its last fire is still running. At most one ``ScheduleFired``."""
    if state.status is not ScheduleStatus.ACTIVE:
        return []
    events: list[ScheduleEvent] = []
    queued = state.queued
    if queued is not None and not previous_running:
        # Alone: one fire an append, so that the scheduler makes each fire's flow (it makes
        # the last fire's); the fires due meanwhile are decided next, with this one running.
        return [_fired(state, queued, queued=True)]
    timing = state.timing()
    decided = due(timing, state.schedule_id, state.considered_until, now, state.spec.catchUp)
    if decided.skipped_count:
        assert decided.first_skipped is not None
        assert decided.last_skipped is not None
        events.append(ScheduleSkipped(first=decided.first_skipped, last=decided.last_skipped,
                                      count=decided.skipped_count, why="missed"))  # fmt: skip
    if decided.fire is not None:
        at = decided.fire
        overlap = state.spec.overlap
        if not previous_running or overlap == "allow":
            events.append(_fired(state, at))
        elif overlap == "queue" and queued is None:
            events.append(ScheduleQueued(fire_time=at))
        else:
            events.append(ScheduleSkipped(first=at, last=at, count=1, why="overlap"))
    return events


def _fired(state: ScheduleState, at: datetime, queued: bool = False) -> ScheduleEvent:
    """The fire at ``at``; skipped (why "refused") when the REST create would refuse its flow,
    which is then never made."""
    try:
        flow_of_fire(state, at)
    except FireRefused as refusal:
        return ScheduleSkipped(first=at, last=at, count=1, why="refused", error=str(refusal))
    return ScheduleFired(fire_time=at, flow_id=flow_id_for(state, at), queued=queued)


def next_due(state: ScheduleState, now: datetime) -> datetime | None:
    """When a scheduler should look at the schedule next (its next fire with its jitter, or
    soon when a fire is queued); None when it will not fire again (paused, deleted, ended)."""
    if state.status is not ScheduleStatus.ACTIVE:
        return None
    upcoming = fire_times(state.timing(), state.considered_until, 1)
    when = None
    if upcoming:
        when = upcoming[0] + jitter(state.schedule_id, upcoming[0], state.spec.jitterSeconds)
    if state.queued is not None:
        check = now + QUEUE_CHECK
        when = check if when is None else min(when, check)
    return when


def jitter_of(state: ScheduleState, fire_time: datetime) -> timedelta:
    return jitter(state.schedule_id, fire_time, state.spec.jitterSeconds)


def next_fires(state: ScheduleState, count: int) -> list[datetime]:
    """The next nominal fire times (none while paused or deleted)."""
    if state.status is not ScheduleStatus.ACTIVE:
        return []
    return fire_times(state.timing(), state.considered_until, count)


def flow_of_fire(state: ScheduleState, fire_time: datetime) -> tuple[str, dict[str, Any]]:
    """The bizId and context of the flow a fire starts (the templates rendered); FireRefused
    when the REST create would refuse that flow."""
    return flow_of(state.spec, state.schedule_id, fire_time)
