"""Schedules on the wire: a schedule's settings as people write them (JSON: the REST body,
recorded in its events), and the schedule routes' answers. What the settings mean (their
timing, the problems that make them refused) is app/schedules/spec.py's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from flowlog.wire.base import JSON_NUMBER, ContextKey, IsoDatetime, JsonValue, Request, Response

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
DEFAULT_BIZ_ID = "{{scheduleId}}-{{fireTime}}"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


EARLIEST = EPOCH
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _in_range(moment: datetime | None) -> datetime | None:
    # Fire times are computed around these; near year 1 or 9999 the arithmetic overflows.
    if moment is not None and not EARLIEST <= moment <= LATEST:
        raise ValueError(f"must be between {EARLIEST.date()} and {LATEST.date()}")
    return moment


Moment = Annotated[IsoDatetime | None, AfterValidator(_in_range)]


class ScheduleSpec(Request):
    """A schedule's settings: when it fires, and the flow each fire creates and starts."""

    flowName: str = Field(..., min_length=1, max_length=200)
    """The definition of the flows (its latest version at each fire)."""
    cron: str | None = Field(None, min_length=1, max_length=200)
    """A cron expression (five fields, as Debian's cron), read in ``timezone``."""
    intervalSeconds: float | None = Field(None, ge=1, le=366 * 86_400)
    """Or: every this many seconds, counted from ``startAt`` (default: from the Unix epoch,
    so that every 3600 s fires on the hour, as Temporal's intervals do)."""
    timezone: str = Field("UTC", min_length=1, max_length=100)
    """An IANA time zone (``Europe/Berlin``): cron times are wall-clock times there."""
    bizType: str = Field("schedule", min_length=1, max_length=200)
    bizIdTemplate: str = Field(DEFAULT_BIZ_ID, min_length=1, max_length=500)
    """The flows' bizId: ``{{fireTime}}``, ``{{fireTime:%Y%m%d}}`` (plain directives of a
    fixed list: no flags or widths), ``{{fireTimeLocal}}``, ``{{scheduleId}}`` and
    ``{{scheduleName}}`` are replaced. At its longest it must fit a flow's bizId (200)."""
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    """The flows' context; its strings are templates as ``bizIdTemplate``. At its longest,
    a fire's flow must fit a create request (1 MiB)."""
    overlap: Literal["skip", "allow", "queue"] = "skip"
    """When the previous flow of the schedule still runs at a fire: skip the fire, start
    another flow anyway, or queue one fire (started when the previous flow ends)."""
    catchUp: Literal["skip", "last"] = "skip"
    """Fires missed while no flowlog process ran (more than a minute late): skip them all, or
    run the last one once."""
    startAt: Moment = None
    """No fire before this time; an interval schedule fires at startAt, then every interval."""
    endAt: Moment = None
    """No fire after this time."""
    jitterSeconds: float = Field(0.0, ge=0, le=86_400)
    """Each fire is delayed by a fixed pseudo-random part of this (the same in every process),
    so that many schedules on the same time spread their flows."""
    description: str = Field("", max_length=1000)
    priority: Annotated[int, JSON_NUMBER] = Field(0, ge=0, le=9, exclude_if=lambda v: v == 0)
    """The fires' flows' priority: among due work, higher first."""


class ScheduleCreate(ScheduleSpec):
    """A new schedule: its id (unique among all schedules) and settings."""

    scheduleId: str = Field(..., min_length=1, max_length=100, pattern=SCHEDULE_ID_PATTERN)
    paused: bool = False
    """Create it paused (it fires once resumed)."""
    reason: str = Field("", max_length=1000)

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec.model_validate(
            self.model_dump(exclude={"scheduleId", "paused", "reason"})
        )


class ScheduleUpdate(ScheduleSpec):
    reason: str = Field("", max_length=1000)


class ScheduleChange(Request):
    reason: str = Field("", max_length=1000)


class ScheduleListQuery(Request):
    cursor: str = Field("", max_length=100)
    """The previous page's ``nextCursor``."""
    pageSize: int = Field(20, ge=1, le=200)


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
