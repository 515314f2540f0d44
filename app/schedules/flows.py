"""The flow a schedule's fire makes: its bizId and context (the templates rendered), held to
what the REST create takes, so that a fire never makes a flow a client could not. Pure.

A schedule's settings are checked with the longest their templates can render (``ANY_TIME``)
when they are made or changed; each fire is checked again with what it renders, for settings
recorded before these checks existed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from flowlog.schedules.templates import ANY_TIME, ISO_LONGEST, AnyTime, Variables, render
from flowlog.wire.base import max_length
from flowlog.wire.flows import CreateRequest, create_refusal
from flowlog.wire.schedules import ScheduleSpec

BIZ_ID_LONGEST: Final = max_length(CreateRequest, "bizId")


class FireRefused(ValueError):
    """The flow of a fire would be refused by the REST create (or its templates cannot be
    rendered): it is never made."""


def flow_of(spec: ScheduleSpec, schedule_id: str, fire_time: datetime
            ) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """The bizId and context of the flow a fire at ``fire_time`` starts; FireRefused when the
    REST create would refuse that flow."""
    variables = _variables(spec, schedule_id, fire_time)
    try:
        biz_id, context = _rendered(spec, schedule_id, variables, fire_time.isoformat())
    except ValueError as problems:  # settings recorded before the templates were checked
        raise FireRefused(f"its templates cannot be rendered: {problems}") from None
    refusal = create_refusal(_request(spec, biz_id, context))
    if refusal is not None:
        raise FireRefused(f"the REST create would refuse its flow: {refusal}")
    return biz_id, context


def limit_problems(spec: ScheduleSpec, schedule_id: str) -> list[str]:
    """What a fire's flow could break of the REST create's limits, its templates rendered as
    long as they can be (their placeholders must have no problems)."""
    biz_id, context = _rendered(
        spec, schedule_id, _variables(spec, schedule_id, ANY_TIME), "0" * ISO_LONGEST
    )
    problems = []
    if len(biz_id) > BIZ_ID_LONGEST:
        problems.append(
            f"bizIdTemplate: renders bizIds of up to {len(biz_id):,} characters, and a flow's "
            f"bizId takes {BIZ_ID_LONGEST} at most"
        )
        biz_id = biz_id[:BIZ_ID_LONGEST]  # the context is checked on its own
    refusal = create_refusal(_request(spec, biz_id, context))
    if refusal is not None:
        problems.append(f"context: at its longest, {refusal}")
    return problems


def _variables(spec: ScheduleSpec, schedule_id: str, fire_time: datetime | AnyTime
               ) -> Variables:  # fmt: skip
    local = fire_time
    if isinstance(fire_time, datetime):
        local = fire_time.astimezone(ZoneInfo(spec.timezone))
    return {
        "fireTime": fire_time,
        "fireTimeLocal": local,
        "scheduleId": schedule_id,
        "scheduleName": schedule_id,
    }


def _rendered(spec: ScheduleSpec, schedule_id: str, variables: Variables, scheduled_for: str
              ) -> tuple[str, dict[str, Any]]:  # fmt: skip
    biz_id = render(spec.bizIdTemplate, variables)
    context = render(dict(spec.context), variables)
    context.update({"scheduleId": schedule_id, "scheduledFor": scheduled_for})
    return biz_id, context


def _request(spec: ScheduleSpec, biz_id: str, context: dict[str, Any]) -> dict[str, Any]:
    """The body of the REST create that would make the flow."""
    return {"flowName": spec.flowName, "bizId": biz_id, "bizType": spec.bizType,
            "context": context, "start": True}  # fmt: skip
