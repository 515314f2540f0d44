"""The console's queues page: each task queue of the caller's tenant (docs/console.md) with
its tasks waiting for a worker, offered later, held and paused, how long the oldest has waited,
the workers seen in the last minute and when one last asked; and the tasks workers hold now.

Offers and workers are rows (``flow_work``, ``task_workers``), not events: a worker's poll or
heartbeat appends nothing to the log, so the page's script asks for the page's parts again
every few seconds as well as when the log grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from asyncpg import Record

from flowlog.api.common import tenant_of
from flowlog.api.replicas import read_pool
from flowlog.console.pages import fragment, json_answer, page, render
from flowlog.console.reads import Q
from flowlog.eventstore.pool import Executor
from flowlog.tasks.queries import Q as TASK_QUERIES
from flowlog.tasks.service import WORKERS_SEEN_SECONDS

HELD_SHOWN = 100
"""Held tasks listed (the longest held first); the count per queue covers them all."""
WORKERS_SHOWN = 12
"""Workers named in a queue's row; the others are counted."""


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    depth: int
    """Offered now, waiting for a worker."""
    later: int
    """Offered from a later time (a polling node's next poll)."""
    held: int
    paused: int
    """Of stopped flows: offered again when they are started."""
    oldest: float | None
    """How long the oldest task waiting for a worker has waited, in seconds."""
    workers: tuple[str, ...]
    """Seen in the last minute (a poll or a heartbeat), the latest first."""
    last_seen: datetime | None
    """When a worker last asked this queue for work (the task API forgets after a day)."""


@dataclass(frozen=True, slots=True)
class Held:
    """A task a worker holds now."""

    queue: str
    worker: str
    flow_id: str
    flow_name: str
    biz_id: str
    node: str
    claimed_at: datetime
    expires_at: datetime
    flow_running: bool


async def queues(executor: Executor, tenant: str | None) -> list[Queue]:
    """``tenant``'s queues (None: every tenant's), by name: those with tasks, and those a
    worker asked for work in the last day."""
    rows = await executor.fetch(TASK_QUERIES.queues, tenant, WORKERS_SEEN_SECONDS)
    seen = {r["queue"]: r["last_seen"] for r in await executor.fetch(Q.queues_last_seen, tenant)}
    found = {row["queue"]: _queue(row, seen.get(row["queue"])) for row in rows}
    for name, last_seen in seen.items():
        found.setdefault(name, Queue(name, 0, 0, 0, 0, None, (), last_seen))
    return [found[name] for name in sorted(found)]


def _queue(row: Record, last_seen: datetime | None) -> Queue:
    return Queue(
        name=row["queue"], depth=row["depth"], later=row["later"], held=row["held"],
        paused=row["paused"], oldest=row["oldest"], workers=tuple(row["workers"]),
        last_seen=last_seen or row["last_seen"],
    )  # fmt: skip


async def held(executor: Executor, tenant: str | None, most: int) -> list[Held]:
    """The tasks workers hold now (at most ``most``), held longest first."""
    return [_held(row) for row in await executor.fetch(Q.tasks_held, tenant, most)]


def _held(row: Record) -> Held:
    return Held(
        queue=row["queue"], worker=row["worker"], flow_id=row["flow_id"],
        flow_name=row["flow_name"], biz_id=row["biz_id"], node=row["node_name"] or "",
        claimed_at=row["claimed_at"], expires_at=row["expires_at"],
        flow_running=row["status"] == "Processing",
    )  # fmt: skip


async def _values(request: web.Request) -> dict[str, Any]:
    pool = await read_pool(request)
    tenant = tenant_of(request)
    listed = await queues(pool, tenant)
    holding = await held(pool, tenant, HELD_SHOWN)
    return {
        "queues": listed,
        "holding": holding,
        "held_total": sum(q.held for q in listed),
        "workers_shown": WORKERS_SHOWN,
        "seen_seconds": int(WORKERS_SEEN_SECONDS),
        "one_tenant": tenant is not None,
    }


@page
async def queues_page(request: web.Request) -> web.StreamResponse:
    return render(request, "queues.html.j2", {**await _values(request), "nav": "queues"})


@page
async def queues_fragment(request: web.Request) -> web.StreamResponse:
    """The queues page's tables, for its live refresh."""
    return json_answer({"html": fragment(request, "_queues.html.j2", await _values(request))})
