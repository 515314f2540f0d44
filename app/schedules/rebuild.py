"""The ``schedules`` rows from the log: rebuilt (``flowlog rebuild``, ``flowlog import``) and
checked (``flowlog verify``), as the flows' projections are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from flowlog.eventstore.pool import Executor
from flowlog.projections.prefixed import streams_under
from flowlog.schedules.decide import next_due, next_fires
from flowlog.schedules.events import STREAM
from flowlog.schedules.state import ScheduleState, from_snapshot, snapshot
from flowlog.schedules.store import Q, fold_recorded
from flowlog.times import utc_now


@dataclass
class ScheduleCheck:
    schedules: int = 0
    differences: list[str] = field(default_factory=list)


async def _folds(conn: Executor) -> dict[str, ScheduleState]:
    """Every schedule's state, folded from its stream."""
    folds = {}
    for stream_id, events in (await streams_under(conn, STREAM)).items():
        state = fold_recorded(events)
        if state is not None:
            folds[stream_id.removeprefix(STREAM)] = state
    return folds


async def rebuild_schedules(pool: asyncpg.Pool) -> int:
    """Writes every schedule's row from its stream; returns how many."""
    now = utc_now()
    async with pool.acquire() as conn:
        folds = await _folds(conn)
        for state in folds.values():
            upcoming = next_fires(state, 1)
            await conn.execute(
                Q.restore, state.schedule_id, state.tenant_id, state.spec.flowName,
                state.status.value, state.spec.model_dump(mode="json"),
                upcoming[0] if upcoming else None, next_due(state, now), state.last_fire_at,
                state.last_flow_id, state.fires, state.skipped, state.version,
                state.created_at, state.updated_at, snapshot(state),
            )  # fmt: skip
    return len(folds)


def _decided(state: ScheduleState) -> tuple[Any, ...]:
    return (
        state.schedule_id, state.tenant_id, state.spec.flowName, state.status.value,
        state.spec.model_dump(mode="json"), state.last_fire_at, state.last_flow_id, state.fires,
        state.skipped, state.version,
    )  # fmt: skip


async def verify_schedules(pool: asyncpg.Pool) -> ScheduleCheck:
    """Every difference between the rows and the folds of the schedules' streams (in one
    snapshot: each append writes its row in the same statement)."""
    check = ScheduleCheck()
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        folds = await _folds(conn)
        rows = {row["id"]: row for row in await conn.fetch(Q.all_rows)}
    check.schedules = len(folds)
    columns = ("id", "tenant_id", "flow_name", "status", "spec", "last_fire_at", "last_flow_id",
               "fires", "skipped", "stream_version")  # fmt: skip
    for schedule_id in sorted(folds.keys() | rows.keys()):
        state, row = folds.get(schedule_id), rows.get(schedule_id)
        if state is None or row is None:
            what = "no row" if row is None else "a row but no stream"
            check.differences.append(f"schedule {schedule_id}: {what}")
            continue
        for column, expected in zip(columns, _decided(state), strict=True):
            if row[column] != expected:
                check.differences.append(
                    f"schedule {schedule_id}: {column} is {row[column]!r}, the log says "
                    f"{expected!r}"
                )
        if from_snapshot(row["state"], row["created_at"], row["updated_at"]) != state:
            check.differences.append(
                f"schedule {schedule_id}: its state snapshot is {row['state']!r}, the log "
                f"says {snapshot(state)!r}"
            )
    return check
