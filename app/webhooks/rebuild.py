"""The ``webhooks`` rows from the log (``flowlog rebuild``, ``flowlog import``) and their check
(``flowlog verify``), as the keys' and schedules' projections are. Delivery's tables are live
state, not projections: left alone. An import also registers each subscription's cursor at
the import's end, so that the imported history is not sent again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from flowlog.eventstore.pool import Executor
from flowlog.projections.prefixed import drift, streams_under
from flowlog.webhooks.events import WEBHOOK_STREAM, is_webhook_id
from flowlog.webhooks.state import fold
from flowlog.webhooks.store import Q


@dataclass
class WebhookCheck:
    webhooks: int = 0
    differences: list[str] = field(default_factory=list)


async def _folds(conn: Executor) -> dict[str, tuple[Any, ...]]:
    """Every subscription's row (the columns of ``rows``), folded from its stream. Other
    streams under the prefix (delivery's ``webhook-replays-<id>``) are not subscriptions."""
    rows = {}
    for stream_id, events in (await streams_under(conn, WEBHOOK_STREAM)).items():
        if not is_webhook_id(stream_id.removeprefix(WEBHOOK_STREAM)):
            continue
        state = fold(events)
        if state is not None:
            rows[state.webhook_id] = state.row()
    return rows


async def rebuild_webhooks(pool: asyncpg.Pool, *, register: bool = False) -> int:
    """Writes every subscription's row from its stream; returns how many. ``register``: also
    each cursor not registered yet, at the log's "now" (after an import)."""
    async with pool.acquire() as conn, conn.transaction():
        folds = await _folds(conn)
        for values in folds.values():
            await conn.execute(Q.restore, *values)
        if register:
            await conn.execute(Q.register_all)
    return len(folds)


async def verify_webhooks(pool: asyncpg.Pool) -> WebhookCheck:
    """Compares every subscription's row with its stream's fold, in one snapshot."""
    check = WebhookCheck()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        folds = await _folds(conn)
        rows = {row["id"]: tuple(row.values()) for row in await conn.fetch(Q.rows)}
    check.webhooks = len(folds)
    check.differences = drift(folds, rows, lambda webhook_id: f"webhook {webhook_id}")
    return check
