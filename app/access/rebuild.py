"""The ``api_keys`` rows from the log (``flowlog rebuild``, ``flowlog import``) and their check
(``flowlog verify``), as the flows' and schedules' projections are. ``last_used_at`` is not in
the log: a rebuilt row keeps the one it had, a new row has none, and verify does not read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from flowlog.access.events import KEY_STREAM, KeyCreated, KeyRevoked, decode
from flowlog.access.store import Q
from flowlog.eventstore.pool import Executor
from flowlog.projections.prefixed import drift, streams_under


@dataclass
class KeyCheck:
    keys: int = 0
    differences: list[str] = field(default_factory=list)


async def _folds(conn: Executor) -> dict[str, tuple[Any, ...]]:
    """Every key's row (the columns of ``key_rows``), folded from its stream."""
    rows = {}
    for events in (await streams_under(conn, KEY_STREAM)).values():
        first = decode(events[0].type, dict(events[0].data))
        if not isinstance(first, KeyCreated):
            continue
        revoked: tuple[Any, ...] = (None, None, None)
        for event in events[1:]:
            later = decode(event.type, dict(event.data))
            if isinstance(later, KeyRevoked):
                revoked = (event.recorded_at, event.metadata.get("actor"), later.reason)
        rows[first.key_id] = (
            first.key_id, first.tenant_id, first.name, first.role, first.prefix, first.digest,
            events[0].recorded_at, events[0].metadata.get("actor", "system"), first.expires_at,
            *revoked, events[-1].version,
        )  # fmt: skip
    return rows


async def rebuild_keys(pool: asyncpg.Pool) -> int:
    """Writes every key's row from its stream; returns how many."""
    async with pool.acquire() as conn:
        folds = await _folds(conn)
        for values in folds.values():
            await conn.execute(Q.restore, *values)
    return len(folds)


async def verify_keys(pool: asyncpg.Pool) -> KeyCheck:
    """Compares every key's row with its stream's fold, in one snapshot."""
    check = KeyCheck()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        folds = await _folds(conn)
        rows = {row["id"]: tuple(row.values()) for row in await conn.fetch(Q.key_rows)}
    check.keys = len(folds)
    check.differences = drift(folds, rows, lambda key_id: f"key {key_id}")
    return check
