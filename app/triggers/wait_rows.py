"""The ``event_waits`` rows from the log (``flowlog rebuild``, ``flowlog import``) and their
check (``flowlog verify``), as the flows' and keys' projections are: each flow that may wait is
folded again, and its running node's wait (app/workflow/projection.py, ``wait_row``) is its
row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from flowlog.eventstore import EventReader
from flowlog.eventstore.pool import Executor
from flowlog.projections.prefixed import drift
from flowlog.triggers.waits import Q
from flowlog.workflow.projection import wait_row
from flowlog.workflow.streams import flow_stream, fold_recorded

Row = tuple[Any, ...]


@dataclass
class WaitCheck:
    waits: int = 0
    differences: list[str] = field(default_factory=list)


async def _folds(conn: Executor, flow_ids: Iterable[str]) -> dict[str, Row]:
    """The rows the flows' streams give, by node id."""
    reader = EventReader(conn)
    rows: dict[str, Row] = {}
    for flow_id in flow_ids:
        state = fold_recorded(await reader.read_stream(flow_stream(flow_id)))
        wait = None if state is None else wait_row(state)
        if wait is not None:
            rows[wait.node_id] = (wait.node_id, wait.flow_id, wait.tenant_id, wait.event_type,
                                  wait.match, wait.since)  # fmt: skip
    return rows


async def rebuild_event_waits(pool: asyncpg.Pool) -> int:
    """Writes every wait's row from its flow's stream; returns how many. Appends that begin or
    end a wait wait for it (the table is locked)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(Q.waits_lock)
        candidates = [row[0] for row in await conn.fetch(Q.waits_candidates)]
        folds = await _folds(conn, sorted(candidates))
        await conn.execute(Q.waits_clear)
        if folds:
            await conn.copy_records_to_table(
                "event_waits",
                records=list(folds.values()),
                columns=["node_id", "flow_id", "tenant_id", "event_type", "match", "since"],
            )
    return len(folds)


async def verify_event_waits(pool: asyncpg.Pool) -> WaitCheck:
    """Compares the table with the flows' streams, in one snapshot."""
    check = WaitCheck()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        candidates = [row[0] for row in await conn.fetch(Q.waits_candidates)]
        folds = await _folds(conn, sorted(candidates))
        rows = {row["node_id"]: tuple(row.values()) for row in await conn.fetch(Q.waits_rows)}
    check.waits = len(folds)
    check.differences = drift(folds, rows, lambda node_id: f"event wait {node_id}",
                              "its flow's stream")  # fmt: skip
    return check
