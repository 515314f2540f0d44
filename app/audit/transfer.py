"""Taking the log elsewhere: export it as JSON lines, import such a file into an empty
database, and derive everything else there from it.

The file (optionally gzip-compressed, by its ``.gz`` name) is one JSON object a line:

1. a header: ``{"format": "flowlog-export", "formatVersion": 1, "exportedAt", "selection",
   "source", "events"}``;
2. one line per event, in the log's order: ``{"position", "stream_id", "version", "type",
   "data", "metadata", "recorded_at"}``;
3. a trailer: ``{"end": true, "events": N, "sha256": <hex of the event lines>}``, so that a
   cut or altered file is refused on import.

Export reads one REPEATABLE READ snapshot through a server-side cursor, so memory stays
bounded whatever the size of the log. Import copies the events into an empty database in one
transaction (all or nothing), keeping streams, versions, types, data, metadata and recorded
times; positions are the new database's, in the same order. Then the projections and the
reactor's work rows are rebuilt from the imported log.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from tqdm import tqdm

from flowlog.access.rebuild import rebuild_keys
from flowlog.archive.format import (
    COLUMNS,
    FORMAT,
    FORMAT_VERSION,
    Reading,
    TransferError,
    check_trailer,
    header_of,
)
from flowlog.archive.rebuild import rebuild_archives
from flowlog.audit.queries import Q
from flowlog.eventstore import EventReader, EventStore, connect, create_pool
from flowlog.projections.rebuild import rebuild
from flowlog.schedules.rebuild import rebuild_schedules
from flowlog.times import audit_time
from flowlog.triggers.rebuild import rebuild_triggers
from flowlog.triggers.wait_rows import rebuild_event_waits
from flowlog.webhooks.rebuild import rebuild_webhooks
from flowlog.workflow.node_decisions import due_at
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.state import offered_task
from flowlog.workflow.streams import FLOW_STREAM, fold_recorded

FETCH = 2000
"""Rows per round trip of the export cursor (memory is bounded by this, not the log)."""


@dataclass(frozen=True, slots=True)
class Selection:
    """What to export: the whole log, one flow, or the events recorded in [since, until)."""

    flow_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def document(self) -> dict[str, Any]:
        return {
            "flow": self.flow_id,
            "since": None if self.since is None else audit_time(self.since),
            "until": None if self.until is None else audit_time(self.until),
        }


@dataclass(slots=True)
class TransferReport:
    events: int = 0
    flows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# -- export ----------------------------------------------------------------------------------


async def export_log(
    database_url: str, out: IO[bytes], selection: Selection, *, progress: bool = True
) -> TransferReport:
    """Writes the selected events to ``out``; returns what was written."""
    report = TransferReport()
    started = time.perf_counter()
    conn = await connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            query, count, args = _export_query(selection)
            total = await conn.fetchval(count, *args)
            source = await conn.fetchrow(Q.export_source)
            assert source is not None
            header = {
                "format": FORMAT,
                "formatVersion": FORMAT_VERSION,
                "exportedAt": audit_time(await conn.fetchval("SELECT now()")),
                "selection": selection.document(),
                "source": dict(source),
                "events": total,
            }
            out.write(orjson.dumps(header) + b"\n")
            digest = hashlib.sha256()
            bar = tqdm(total=total, desc="export", unit="event", unit_scale=True,
                       disable=not progress)  # fmt: skip
            try:
                async for row in conn.cursor(query, *args, prefetch=FETCH):
                    line = orjson.dumps(
                        {
                            "position": row["position"],
                            "stream_id": row["stream_id"],
                            "version": row["version"],
                            "type": row["type"],
                            "data": row["data"],
                            "metadata": row["metadata"],
                            "recorded_at": row["recorded_at"],
                        }
                    )
                    digest.update(line)
                    out.write(line + b"\n")
                    report.bytes += len(line) + 1
                    report.events += 1
                    if report.events % FETCH == 0:
                        bar.update(FETCH)
                bar.update(report.events % FETCH)
            finally:
                bar.close()
            trailer = {"end": True, "events": report.events, "sha256": digest.hexdigest()}
            out.write(orjson.dumps(trailer) + b"\n")
    finally:
        await conn.close()
    out.flush()
    report.seconds = time.perf_counter() - started
    return report


def _export_query(selection: Selection) -> tuple[str, str, tuple[Any, ...]]:
    """The query of the selected events, the query of their count, and their arguments."""
    if selection.flow_id is not None:
        return Q.export_stream, Q.export_stream_count, (selection.flow_id,)
    return Q.export_range, Q.export_range_count, (selection.since, selection.until)


# -- import ----------------------------------------------------------------------------------


async def import_log(
    database_url: str, source: IO[bytes], *, progress: bool = True, size: int | None = None
) -> TransferReport:
    """Loads an export into the empty database of ``database_url`` (migrated first), then
    rebuilds the projections and the reactor's work from it."""
    from flowlog.migrate import migrate_database

    report = TransferReport()
    started = time.perf_counter()
    await migrate_database(database_url)
    reading = Reading()
    lines = iter(source)
    reading.header = header_of(next(lines, b""))
    bar = tqdm(total=size, desc="import", unit="B", unit_scale=True, disable=not progress)
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(Q.import_lock)
            if await conn.fetchval(Q.import_has_events):
                raise TransferError(
                    "the target database already has events; import needs an empty one"
                )
            await conn.copy_records_to_table(
                "events", records=_records(lines, reading, bar), columns=COLUMNS
            )
            check_trailer(reading)
            broken = await conn.fetch(Q.import_broken_streams)
            if broken:
                names = ", ".join(f"{r['stream_id']} (versions {r['first']}..{r['last']}, "
                                  f"{r['events']} events)" for r in broken)  # fmt: skip
                raise TransferError(
                    f"streams are not whole (a time-range export cannot be imported): {names}"
                )
    finally:
        bar.close()
        await conn.close()
    report.events = reading.events
    report.phases["copy"] = time.perf_counter() - started
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        rebuilt = await rebuild(EventStore(pool), PROJECTOR, progress=progress)
        report.flows = rebuilt.flows
        report.phases["rebuild"] = time.perf_counter() - started - report.phases["copy"]
        await _rebuild_work(pool)
        await rebuild_schedules(pool)
        await rebuild_archives(pool)
        await rebuild_keys(pool)
        await rebuild_triggers(pool)
        # Subscriptions' cursors start at the import's end: the history is not sent again.
        await rebuild_webhooks(pool, register=True)
        await rebuild_event_waits(pool)
    finally:
        await pool.close()
    report.seconds = time.perf_counter() - started
    return report


async def _records(
    lines: Iterator[bytes], reading: Reading, bar: tqdm[Any]
) -> AsyncIterator[tuple[Any, ...]]:
    for number, raw in enumerate(lines, start=2):
        line = raw.rstrip(b"\n")
        bar.update(len(raw))
        if reading.trailer is not None:
            if line.strip():
                raise TransferError(f"line {number}: data after the trailer")
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TransferError(f"line {number}: not JSON ({exc})") from None
        if record.get("end") is True:
            reading.trailer = record
            continue
        reading.digest.update(line)
        reading.events += 1
        try:
            yield (
                record["stream_id"],
                record["version"],
                record["type"],
                record["data"],
                record["metadata"],
                datetime.fromisoformat(record["recorded_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferError(f"line {number}: not an event ({exc!r})") from None


async def _rebuild_work(pool: Any) -> None:
    """The reactor's work rows of every flow that has not ended, from its history."""
    reader = EventReader(pool)
    now = await pool.fetchval("SELECT now()")
    for row in await pool.fetch(Q.import_unfinished_flows):
        state = fold_recorded(await reader.read_stream(FLOW_STREAM + row["id"]))
        due = None if state is None else due_at(state, now)
        if state is not None and due is not None:
            task = offered_task(state) or (None, None, None)
            await pool.execute(
                Q.import_work, state.flow_id, state.name, state.definition_version,
                state.status.value, due, state.version, state.tenant_id, *task, state.priority,
            )  # fmt: skip


@contextlib.contextmanager
def opened(path: Path, mode: str) -> Iterator[IO[bytes]]:
    """The file, through gzip when its name ends in ``.gz``; ``-`` is stdin or stdout (flushed
    after, not closed). ``mode`` is ``r`` or ``w``."""
    if str(path) == "-":
        stream = sys.stdout.buffer if mode == "w" else sys.stdin.buffer
        yield stream
        stream.flush()
        return
    if path.suffix == ".gz":
        with gzip.open(path, mode + "b") as compressed:
            yield compressed  # type: ignore[misc]
        return
    with open(path, mode + "b", buffering=1 << 20) as plain:
        yield plain
