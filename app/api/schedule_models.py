"""The schedule routes' request and answer models (app/api/schedules.py), apart from the
routes so that clients (app/client) share them without the server."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from flowlog.api.models import Request, Response
from flowlog.schedules.spec import ScheduleSpec


class ScheduleInfo(Response):
    scheduleId: str
    tenantId: str
    status: Literal["Active", "Paused", "Deleted"]
    spec: ScheduleSpec
    nextFireTimes: list[datetime]
    """The next nominal fire times (none while paused, or once ended)."""
    lastFireTime: datetime | None = None
    lastFlowId: str | None = None
    fires: int
    skipped: int
    createTime: datetime
    updateTime: datetime
    version: int


class ScheduleEventInfo(Response):
    version: int
    type: str
    time: datetime
    actor: str
    reason: str
    data: dict[str, Any]


class ScheduleDetail(Response):
    info: ScheduleInfo
    events: list[ScheduleEventInfo]
    """The schedule's latest events (its changes and fires), newest last."""


class ScheduleList(Response):
    schedules: list[ScheduleInfo]
    nextCursor: str | None = None


class ScheduleListQuery(Request):
    cursor: str = Field("", max_length=100)
    """The previous page's ``nextCursor``."""
    pageSize: int = Field(20, ge=1, le=200)


class ScheduleUpdate(ScheduleSpec):
    reason: str = Field("", max_length=1000)


class ScheduleChange(Request):
    reason: str = Field("", max_length=1000)
