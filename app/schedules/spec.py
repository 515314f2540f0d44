"""What a schedule's settings mean (their shape is flowlog.wire.schedules's ScheduleSpec): the
problems that make them refused beyond their shape, and their timing. Pure."""

from __future__ import annotations

from flowlog.schedules.templates import template_problems
from flowlog.schedules.timing import Timing, timing_problems
from flowlog.wire.schedules import EPOCH, ScheduleSpec


def problems_of(spec: ScheduleSpec) -> list[str]:
    found = timing_problems(
        spec.cron, spec.intervalSeconds, spec.timezone, spec.endAt, spec.jitterSeconds
    )
    found += [f"bizIdTemplate: {p}" for p in template_problems(spec.bizIdTemplate)]
    found += [f"context: {p}" for p in template_problems(spec.context)]
    if spec.startAt is not None and spec.endAt is not None and spec.endAt <= spec.startAt:
        found.append("endAt must be after startAt")
    return found


def timing_of(spec: ScheduleSpec) -> Timing:
    return Timing(
        cron=spec.cron,
        interval_seconds=spec.intervalSeconds,
        anchor=spec.startAt or EPOCH,
        timezone=spec.timezone,
        end_at=spec.endAt,
        jitter_seconds=spec.jitterSeconds,
    )
