"""A flow's node executions drawn to scale on one time axis. Pure.

Built from the flow's events (each with the time it was recorded), up to a version: every
execution is a row, from its start to its end (or to the last moment shown, while it runs).
Its parts are told apart: the executor's run, the polling of a submitted operation, and the
wait before an automatic retry. Periods when the flow was stopped are shaded behind all rows.
No-change polls are not events (a waiting flow costs nothing), so a polling part says how
long it was polled, not how many times.

Positions are in units of a 1000-wide axis (the SVG's viewBox), so the page scales them.
A parallel node's branches are child flows: each is a lane (``lane``), its executions drawn on
the parent's axis, so that the branches line up side by side under the node that forked them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from flowlog.workflow.errors import Code
from flowlog.workflow.events import (
    FlowCanceled,
    FlowEvent,
    FlowResumed,
    FlowRetried,
    FlowStarted,
    FlowStopped,
    NodeFailed,
    NodeOperationSubmitted,
    NodeStarted,
    NodeSucceeded,
    NodeWaiting,
)

AXIS = 1000.0
MIN_WIDTH = 3.0
SegmentKind = Literal["run", "poll", "wait"]


@dataclass(frozen=True, slots=True)
class Segment:
    kind: SegmentKind
    start: datetime
    end: datetime
    x: float
    width: float


@dataclass(slots=True)
class Execution:
    node_id: str
    name: str
    key: str
    attempt: int
    started_at: datetime
    ended_at: datetime | None = None
    submitted_at: datetime | None = None
    outcome: str = "Running"
    """Running, Polling, Waiting, Finished, Error, Interrupted, Canceled."""
    error_code: int | None = None
    retry_at: datetime | None = None
    segments: list[Segment] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return ((self.ended_at or self.started_at) - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Band:
    """A stretch of time when the flow was stopped."""

    start: datetime
    end: datetime
    x: float
    width: float


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    offset: timedelta


@dataclass(frozen=True, slots=True)
class Timeline:
    start: datetime
    end: datetime
    rows: tuple[Execution, ...]
    bands: tuple[Band, ...]
    ticks: tuple[Tick, ...]


def build(events: Sequence[tuple[FlowEvent, datetime]], until: datetime) -> Timeline:
    """The timeline of ``events`` (oldest first, with their recorded times), as it stood at
    ``until`` (the time of the last event shown, or now for a flow still moving)."""
    start = events[0][1] if events else until
    end = max(until, start + timedelta(seconds=1))
    rows, stops = _walk(events, end)
    scale = _Scale(start, end)
    _measure(rows, end, scale)
    bands = tuple(Band(a, b, *scale.span(a, b)) for a, b in stops)
    ticks = tuple(Tick(AXIS * i / 4, (end - start) * i / 4) for i in range(5))
    return Timeline(start, end, tuple(rows), bands, ticks)


@dataclass(frozen=True, slots=True)
class Lane:
    """A parallel node's branch, a child flow: its node executions on its parent's axis."""

    branch: str
    flow_id: str
    status: str | None
    """The child's status at the parent's moment; None: not created by then."""
    rows: tuple[Execution, ...]

    @property
    def started_at(self) -> datetime | None:
        return self.rows[0].started_at if self.rows else None

    @property
    def ended_at(self) -> datetime | None:
        """When its last execution ended, if every one has."""
        if not self.rows or any(row.ended_at is None for row in self.rows):
            return None
        return self.rows[-1].ended_at


def lane(
    branch: str, flow_id: str, status: str | None,
    events: Sequence[tuple[FlowEvent, datetime]], axis: Timeline,
) -> Lane:  # fmt: skip
    """A branch's lane: the child's ``events`` (those recorded up to the parent's moment)
    drawn on the parent's timeline ``axis``, so that branches line up with the parent and
    with each other."""
    rows, _ = _walk(events, axis.end)
    _measure(rows, axis.end, _Scale(axis.start, axis.end))
    return Lane(branch, flow_id, status, tuple(rows))


def _walk(
    events: Sequence[tuple[FlowEvent, datetime]], end: datetime
) -> tuple[list[Execution], list[tuple[datetime, datetime]]]:
    """The executions of ``events`` and the stretches when the flow was stopped."""
    rows: list[Execution] = []
    stopped_since: datetime | None = None
    stops: list[tuple[datetime, datetime]] = []
    for event, at in events:
        running = rows[-1] if rows and rows[-1].ended_at is None else None
        match event:
            case NodeStarted():
                rows.append(Execution(event.node_id, event.name, event.key, event.attempt, at))
            case NodeOperationSubmitted() if running is not None:
                running.submitted_at = at
                running.outcome = "Polling"
            case NodeWaiting() if running is not None:
                running.submitted_at = at
                running.outcome = "Waiting"
            case NodeSucceeded() if running is not None:
                running.ended_at, running.outcome = at, "Finished"
            case NodeFailed() if running is not None:
                running.ended_at, running.error_code = at, event.error_code
                running.outcome = (
                    "Interrupted" if event.error_code == Code.NODE_INTERRUPTED else "Error"
                )
                running.retry_at = event.retry_at if event.will_retry else None
                if event.pause:
                    stopped_since = stopped_since or at
            case FlowCanceled():
                if running is not None:
                    running.ended_at, running.outcome = at, "Canceled"
                if stopped_since is not None:
                    stops.append((stopped_since, at))
                    stopped_since = None
            case FlowStopped():
                stopped_since = stopped_since or at
            case FlowResumed() | FlowStarted() | FlowRetried() if stopped_since is not None:
                stops.append((stopped_since, at))
                stopped_since = None
    if stopped_since is not None:
        stops.append((stopped_since, end))
    return rows, stops


def _measure(rows: list[Execution], end: datetime, scale: _Scale) -> None:
    for index, row in enumerate(rows):
        following = rows[index + 1].started_at if index + 1 < len(rows) else None
        row.segments = _segments(row, following, end, scale)


@dataclass(frozen=True, slots=True)
class _Scale:
    start: datetime
    end: datetime

    def x(self, at: datetime) -> float:
        total = (self.end - self.start).total_seconds()
        return max(0.0, min(AXIS, AXIS * (at - self.start).total_seconds() / total))

    def span(self, a: datetime, b: datetime) -> tuple[float, float]:
        x = min(self.x(a), AXIS - MIN_WIDTH)
        return x, max(MIN_WIDTH, self.x(b) - x)


def _segments(
    row: Execution, following: datetime | None, end: datetime, scale: _Scale
) -> list[Segment]:
    finished = row.ended_at or end
    parts: list[tuple[SegmentKind, datetime, datetime]] = []
    if row.submitted_at is not None:
        parts += [("run", row.started_at, row.submitted_at), ("poll", row.submitted_at, finished)]
    else:
        parts.append(("run", row.started_at, finished))
    if row.retry_at is not None and row.ended_at is not None:
        parts.append(("wait", row.ended_at, min(following or row.retry_at, end)))
    return [Segment(kind, a, b, *scale.span(a, b)) for kind, a, b in parts if b >= a]
