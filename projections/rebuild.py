"""Rebuild: replay the log into fresh copies of the projection tables and swap them in.

1. Bulk: in one REPEATABLE READ snapshot, every event of every flow (and definition) stream
   that the snapshot sees, stream by stream, folded into rows and COPY'd into
   ``<table>_rebuild`` copies (same columns and checks as the live tables, no indexes yet);
   with ``jobs``, ranges of the flow streams are folded by that many processes reading in the
   same snapshot (projections/rebuild_jobs.py). The bulk's checkpoint is the snapshot's read
   horizon: every event before it is in the copies. Then the copies get the live tables'
   indexes and keys, each built in one pass.
2. Catch-up: the log after that checkpoint, in log order (never skipping: see
   docs/eventstore.md), re-folding each touched stream and upserting its rows into the copies,
   until little is left. Events above the horizon that the bulk's snapshot already saw (their
   transactions committed after an older one that was still open) are skipped.
3. Swap: lock the live tables (flow appends write them in their own statement, so no flow
   event can commit meanwhile and appends wait), apply the last committed events that the
   bulk's snapshot did not see (however far behind a long transaction held the catch-up), recount,
   drop the live tables and rename the copies. Statements that waited on the old tables
   resolve the names again and go to the new ones.

The service keeps serving reads and writes throughout; appends pause only for the swap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from tqdm import tqdm

from flowlog.eventstore import LOG_START, Checkpoint, EventReader, EventStore, RecordedEvent
from flowlog.eventstore.pool import Executor
from flowlog.projections.bulk import (
    COPY_SUFFIX,
    Projector,
    load_flows,
    prefix_range,
    streams,
)
from flowlog.projections.rebuild_jobs import PARTS_PER_JOB, load_in_jobs, split_range
from flowlog.projections.rows import DefinitionRow
from flowlog.sql import load_queries

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RebuildQueries:
    bulk_snapshot: str
    checkpoint_below: str
    export_snapshot: str
    workflows_by_id: str
    nodes_by_flow: str
    workflow_count: str
    orphan_workflows: str
    counts_drift: str
    all_definitions: str
    unseen_by_snapshot: str
    events_unseen_after: str
    drop_copies: str
    create_copies: str
    index_builds: str
    table_options: str
    indexes_of: str
    upsert_workflows_copy: str
    upsert_nodes_copy: str
    upsert_definitions_copy: str
    count_copy: str
    lock_live: str
    swap: str
    copy_grants: str


Q = load_queries(RebuildQueries, "rebuild")

LIVE_TABLES = ("workflows", "workflow_nodes", "workflow_counts", "workflow_definitions")
_CATCH_UP_BATCH = 2000
_CATCH_UP_GOOD_ENOUGH = 200  # events left when the copies are swapped in


@dataclass
class RebuildReport:
    events: int = 0
    flows: int = 0
    seconds: float = 0.0
    caught_up_events: int = 0
    swap_seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(
    store: EventStore,
    projector: Projector,
    *,
    progress: bool = True,
    jobs: int = 1,
    url: str | None = None,
) -> RebuildReport:
    """Rebuilds the projection tables from the log while the service runs; with ``jobs`` over
    one, the bulk folds in that many processes, which connect to ``url`` (the database of
    ``store``: its pool's connections cannot be handed to another process)."""
    if jobs < 1 or (jobs > 1 and url is None):
        raise ValueError("a rebuild runs at least one job, and more only given the database's URL")
    report = RebuildReport()
    started = time.perf_counter()
    pool = store.pool
    async with pool.acquire() as conn:
        await conn.execute(Q.drop_copies)
        await conn.execute(Q.create_copies)
        for table in LIVE_TABLES:
            options = await conn.fetchval(Q.table_options, table)
            if options:
                # Options come from the catalog (the live table's own), not from any input.
                await conn.execute(f"ALTER TABLE {table}{COPY_SUFFIX} SET ({options})")
    bar = tqdm(desc="rebuild", unit="event", unit_scale=True, disable=not progress)
    try:
        checkpoint, snapshot = await _bulk(pool, projector, report, bar, jobs, url)
        phase = report.phases["bulk"] = time.perf_counter() - started
        await asyncio.gather(*(_build_indexes(pool, table) for table in LIVE_TABLES))
        report.phases["indexes"] = time.perf_counter() - started - phase
        phase = time.perf_counter() - started
        checkpoint = await _catch_up(store, projector, checkpoint, snapshot, report, bar)
        report.phases["catch_up"] = time.perf_counter() - started - phase
        swap_start = time.perf_counter()
        await _swap(pool, projector, checkpoint, snapshot, report, bar)
        report.swap_seconds = time.perf_counter() - swap_start
    except BaseException:
        async with pool.acquire() as conn:
            await conn.execute(Q.drop_copies)
        raise
    finally:
        bar.close()
    report.seconds = time.perf_counter() - started
    log.info(
        "projections rebuilt",
        extra={
            "events": report.events,
            "flows": report.flows,
            "seconds": round(report.seconds, 2),
            "events_per_s": round(report.events_per_s),
            "swap_seconds": round(report.swap_seconds, 3),
        },
    )
    return report


async def _bulk(
    pool: asyncpg.Pool,
    projector: Projector,
    report: RebuildReport,
    bar: tqdm[Any],
    jobs: int,
    url: str | None,
) -> tuple[Checkpoint, str]:
    """Folds every stream the snapshot sees into the copies; returns the log checkpoint below
    which the copies hold every event, and the snapshot.

    The bulk reads whatever its snapshot sees, not only what lies below the horizon: a
    transaction left open in any database of the cluster holds the horizon back, and the
    rest of the log would otherwise wait for the swap, under its lock. Its jobs read in the
    same snapshot (exported), which this transaction keeps valid until they are done.
    """

    def counted(events: int) -> None:
        report.events += events
        bar.update(events)

    async with (
        pool.acquire() as reader,
        pool.acquire() as writer,
        reader.transaction(isolation="repeatable_read", readonly=True),
    ):
        taken = await reader.fetchrow(Q.bulk_snapshot)
        assert taken is not None  # a SELECT without FROM returns one row
        snapshot, horizon = taken["snapshot"], taken["horizon"]
        row = await reader.fetchrow(Q.checkpoint_below, horizon)
        checkpoint = LOG_START if row is None else Checkpoint(row[0], row[1])
        lower, upper = prefix_range(projector.flow_prefix)
        bounds = [lower, upper]
        if jobs > 1:
            bounds = await split_range(reader, lower, upper, jobs * PARTS_PER_JOB)
        if len(bounds) > 2:
            assert url is not None  # rebuild() checked it
            exported = await reader.fetchval(Q.export_snapshot)
            await load_in_jobs(url, exported, projector, bounds, jobs, counted)
        else:
            await load_flows(reader, writer, projector, lower, upper, counted)
        definitions: list[DefinitionRow] = []
        async for events in streams(reader, *prefix_range(projector.definition_prefix)):
            definitions.extend(projector.definition_rows(events))
            counted(len(events))
        if definitions:
            await writer.copy_records_to_table(
                "workflow_definitions" + COPY_SUFFIX,
                records=definitions,
            )
    return checkpoint, snapshot


async def _build_indexes(pool: asyncpg.Pool, table: str) -> None:
    """Gives the loaded copy of ``table`` the live table's indexes (before the catch-up, whose
    upserts need its keys)."""
    async with pool.acquire() as conn:
        for row in await conn.fetch(Q.index_builds, table, table + COPY_SUFFIX):
            # Made by PostgreSQL from the catalog (the live table's own definitions).
            await conn.execute(row["statement"])


async def _catch_up(
    store: EventStore,
    projector: Projector,
    checkpoint: Checkpoint,
    snapshot: str,
    report: RebuildReport,
    bar: tqdm[Any],
) -> Checkpoint:
    """Applies the log after ``checkpoint`` that the bulk's snapshot did not see to the
    copies, until little is left."""
    while True:
        batch = await store.read_all(checkpoint, _CATCH_UP_BATCH)
        if batch:
            transactions = [e.transaction_id for e in batch]
            unseen = set(await store.pool.fetchval(Q.unseen_by_snapshot, transactions, snapshot))
            await _apply(
                store.pool, projector, [e for e in batch if e.transaction_id in unseen], report
            )
            checkpoint = batch[-1].checkpoint
            bar.update(len(batch))
        if len(batch) < _CATCH_UP_GOOD_ENOUGH:
            return checkpoint


async def _apply(
    executor: Executor,
    projector: Projector,
    events: Sequence[RecordedEvent],
    report: RebuildReport,
) -> None:
    """Re-folds every stream that ``events`` touch and upserts its rows into the copies."""
    report.caught_up_events += len(events)
    report.events += len(events)
    reader = EventReader(executor)
    flows: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    definitions: list[dict[str, Any]] = []
    for stream_id in _touched(events, projector.flow_prefix):
        rows = projector.fold_flow(await reader.read_stream(stream_id))
        if rows is not None:
            flows.append(rows[0]._asdict())
            nodes.extend(node._asdict() for node in rows[1])
    for stream_id in _touched(events, projector.definition_prefix):
        stored = await reader.read_stream(stream_id)
        definitions.extend(d._asdict() for d in projector.definition_rows(stored))
    if flows:
        await executor.execute(Q.upsert_workflows_copy, flows)
    if nodes:
        await executor.execute(Q.upsert_nodes_copy, nodes)
    if definitions:
        await executor.execute(Q.upsert_definitions_copy, definitions)


def _touched(events: Iterable[RecordedEvent], prefix: str) -> list[str]:
    return sorted({e.stream_id for e in events if e.stream_id.startswith(prefix)})


async def _swap(
    pool: asyncpg.Pool,
    projector: Projector,
    checkpoint: Checkpoint,
    snapshot: str,
    report: RebuildReport,
    bar: tqdm[Any],
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(Q.lock_live)
        rows = await conn.fetch(
            Q.events_unseen_after, checkpoint.transaction_id, checkpoint.position, snapshot
        )
        last = [RecordedEvent(*row) for row in rows]
        if last:
            await _apply(conn, projector, last, report)
            bar.update(len(last))
        # Counted in the copy: a flow's rows may come from the bulk, the catch-up or the swap.
        report.flows = await conn.fetchval(Q.count_copy)
        canonical = {}
        for table in LIVE_TABLES:
            live = {r["definition"]: r["name"] for r in await conn.fetch(Q.indexes_of, table)}
            for r in await conn.fetch(Q.indexes_of, table + COPY_SUFFIX):
                canonical[r["name"]] = live[r["definition"]]
        # A new table comes without grants: the copies get the live tables' (the runtime
        # roles' and any other), in the swap's transaction, before anyone can see them.
        await conn.execute(Q.copy_grants, list(LIVE_TABLES), COPY_SUFFIX)
        await conn.execute(Q.swap)
        for copy_name, live_name in canonical.items():
            # Both names come from the catalog, not from any input.
            await conn.execute(f'ALTER INDEX "{copy_name}" RENAME TO "{live_name}"')
