"""How the console words things: times, durations, statuses, waits. Pure; used as Jinja
filters.

Times are shown twice, as people read them: relative ("3 min ago", updated in the page by a
script) and absolute in UTC (in the element's ``title`` and ``datetime``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from flowlog.workflow.admission import Waiting as LimitWait

FLOW_STATUSES = ("Initializing", "Processing", "Stopped", "Canceling", "Canceled", "Finished",
                 "Error")  # fmt: skip
STATUS_WORDS = {
    "Initializing": "created, not started",
    "Processing": "running",
    "Stopped": "stopped (paused)",
    "Canceling": "canceling",
    "Canceled": "canceled",
    "Finished": "finished",
    "Error": "ended in error",
}
"""What each status means, for the title of a status badge."""


def iso(at: datetime) -> str:
    """The machine-readable time of a ``<time datetime>`` (UTC, milliseconds)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def absolute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(at: datetime, now: datetime) -> str:
    seconds = (now - at).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 5:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            amount = int(seconds // size)
            return f"in {amount} {unit}" if future else f"{amount} {unit} ago"
    return "just now"


def duration(value: timedelta | float) -> str:
    """``850 ms``, ``2.4 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


WaitingKind = Literal["callback", "timer"]
WAITING_KINDS: dict[str, str] = {"callback": "a person or a callback", "timer": "a timer"}
"""What a waiting node waits for, by its kind: the flows page's ``waiting`` filter takes the
kind, and says it in these words."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """The node a flow waits on, run by no worker, once its action has run (``NodeWaiting``):
    a callback waits for a person (or a service) to complete it, a timer for its time."""

    node: str
    kind: WaitingKind
    since: datetime
    """When its action had run and it began to wait (the time of ``NodeWaiting``)."""
    wake_at: datetime | None = None
    """A timer's time to move on."""
    deadline: datetime | None = None
    """A callback's deadline (it fails then), if it has one."""


def waiting_text(waiting: Waiting, now: datetime) -> str:
    """``Waiting: approval (a person or a callback), for 2 h; deadline in 22 h``, or
    ``Waiting: coolDown (a timer), until 2026-11-29 14:00:00 UTC (in 20 min)``."""
    text = f"Waiting: {waiting.node} ({WAITING_KINDS[waiting.kind]})"
    if waiting.kind == "timer" and waiting.wake_at is not None:
        return f"{text}, until {absolute(waiting.wake_at)} ({relative(waiting.wake_at, now)})"
    text += f", for {duration(now - waiting.since)}"
    if waiting.deadline is not None:
        passed = "passed " if waiting.deadline <= now else ""
        text += f"; deadline {passed}{relative(waiting.deadline, now)}"
    return text


VALUE_SHOWN = 200
"""Characters of a limit's key value on a flow's page (a context value may be long)."""
VALUE_LISTED = 40
"""...and in a row of the flows list (the whole text is in the row's tooltip)."""


def limit_text(waiting: LimitWait, now: datetime) -> str:
    """What a flow waits for on flow control, as its page says it: ``Waiting: concurrency
    context.clusterId=c-1, 3 ahead (2 running)``, or ``Waiting: rate limit context.region=eu
    of node upload, starts at 2026-12-06 11:07:03 UTC (in 3 s)``."""
    shown = replace(waiting, value=_clipped(waiting.value, VALUE_SHOWN))
    if waiting.limit != "rate":
        return f"Waiting: {shown.reason} ({waiting.running} running)"
    if waiting.starts_at is None:
        return f"Waiting: {shown.reason}"
    at = waiting.starts_at
    if at > now:
        return f"Waiting: {shown.reason}, starts at {absolute(at)} ({relative(at, now)})"
    return f"Waiting: {shown.reason}, its start at {absolute(at)} has come: due now"


def limit_listed(waiting: LimitWait, now: datetime) -> str:
    """The same, short, for a row of the flows list: ``waiting: concurrency clusterId=c-1, 3
    ahead``, ``waiting: rate limit region=eu of node upload, starts in 3 s``."""
    key = None if waiting.key is None else waiting.key.removeprefix("context.")
    shown = replace(waiting, key=key, value=_clipped(waiting.value, VALUE_LISTED))
    if waiting.limit != "rate" or waiting.starts_at is None:
        return f"waiting: {shown.reason}"
    at = waiting.starts_at
    return f"waiting: {shown.reason}, " + (f"starts {relative(at, now)}" if at > now else "due now")


def _clipped(value: str, most: int) -> str:
    if value == "":
        return '""'  # a flow without the key: the line of those without it
    return value if len(value) <= most else value[: most - 1] + "…"


TaskState = Literal["offered", "later", "paused", "held", "lapsed"]
TASK_BADGES: dict[str, str] = {
    "offered": "Waiting for a worker",
    "later": "Offered later",
    "paused": "Not offered",
    "held": "Held by a worker",
    "lapsed": "Lease ran out",
}
"""The badge of a task in each state (the words beside it say the rest)."""


@dataclass(frozen=True, slots=True)
class Task:
    """The task a flow's running node offers on a queue now, and who holds it (the flow's
    ``flow_work`` row, not its log: a worker's poll, heartbeat or lost lease records no
    event)."""

    queue: str
    node_id: str
    offered_at: datetime | None
    """Since when it is offered (a polling node's next poll: from when)."""
    worker: str | None = None
    claimed_at: datetime | None = None
    expires_at: datetime | None = None
    """The end of the holder's lease (a heartbeat extends it)."""
    details: Any = None
    """What the holder's last heartbeat said of its progress."""
    flow_running: bool = True
    """False while the flow is stopped: polls pass its task by."""
    node: str = ""
    """The node's name (the page fills it from the flow's history)."""

    def state(self, now: datetime) -> TaskState:
        """held (a worker's lease runs), lapsed (it ran out: flowlog takes the node back as
        interrupted), paused (the flow is stopped), later (offered from a time to come), or
        offered (waiting for a worker)."""
        if self.worker is not None:
            return "lapsed" if self.expires_at is not None and self.expires_at <= now else "held"
        if not self.flow_running:
            return "paused"
        if self.offered_at is not None and self.offered_at > now:
            return "later"
        return "offered"


def status_class(status: str) -> str:
    """The CSS class of a status (colour is never the only sign: the word is shown too)."""
    return "st-" + status.lower()


def short_id(flow_id: str) -> str:
    return flow_id[:8]


def pretty_json(value: Any) -> str:
    plain = dict(value) if isinstance(value, Mapping) else value  # the fold's read-only maps
    return orjson.dumps(plain, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def shown_value(value: Any) -> str:
    """A JSON value on one line, as the change list shows it."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value if value else '""'
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
