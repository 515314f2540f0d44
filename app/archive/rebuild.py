"""The ``archives`` and ``archived_flows`` rows from the archive streams: rebuilt (``flowlog
rebuild``, ``flowlog import``) and checked (``flowlog verify``), as the flows' projections
are."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from flowlog.archive import events as ev
from flowlog.eventstore import RecordedEvent
from flowlog.eventstore.pool import Executor
from flowlog.projections.prefixed import drift, streams_under

ARCHIVE_COLUMNS = (
    "id", "status", "file", "sha256", "bytes", "flows", "events", "first_position",
    "last_position", "removed", "created_at", "updated_at", "stream_version",
)  # fmt: skip
FLOW_COLUMNS = (
    "flow_id", "archive_id", "tenant_id", "name", "status", "version", "first_position",
    "last_position", "archived_at",
)  # fmt: skip
_ARCHIVE_ROWS = "SELECT " + ", ".join(ARCHIVE_COLUMNS) + " FROM archives"
_FLOW_ROWS = "SELECT " + ", ".join(FLOW_COLUMNS) + " FROM archived_flows"


@dataclass
class ArchiveCheck:
    archives: int = 0
    differences: list[str] = field(default_factory=list)


@dataclass
class _Folded:
    archives: dict[str, dict[str, Any]] = field(default_factory=dict)
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)


def _fold(stream: list[RecordedEvent], folded: _Folded) -> None:
    """One archive's rows, as its events' statements write them (sql/queries/archival.sql)."""
    archive_id = stream[0].stream_id.removeprefix(ev.ARCHIVE_STREAM)
    row: dict[str, Any] = dict.fromkeys(ARCHIVE_COLUMNS)
    for event in stream:
        at: datetime = event.recorded_at
        row |= {"updated_at": at, "stream_version": event.version}
        if event.type == ev.PLANNED:
            planned = ev.ArchivePlanned.model_validate(event.data)
            row |= {"id": archive_id, "status": "Planned", "flows": len(planned.flows),
                    "created_at": at}  # fmt: skip
        elif event.type == ev.WRITTEN:
            written = ev.ArchiveWritten.model_validate(event.data)
            row |= {
                "status": "Written", "file": written.file, "sha256": written.sha256,
                "bytes": written.bytes, "flows": len(written.flows), "events": written.events,
                "first_position": min((f.first_position for f in written.flows), default=None),
                "last_position": max((f.last_position for f in written.flows), default=None),
            }  # fmt: skip
            for flow in written.flows:
                folded.flows[flow.id] = {
                    "flow_id": flow.id, "archive_id": archive_id, "tenant_id": flow.tenant_id,
                    "name": flow.name, "status": flow.status, "version": flow.version,
                    "first_position": flow.first_position, "last_position": flow.last_position,
                    "archived_at": at,
                }  # fmt: skip
        elif event.type == ev.REMOVED:
            removed = ev.ArchiveRemoved.model_validate(event.data)
            row |= {"status": "Removed", "removed": removed.removed}
            _drop(folded, archive_id, removed.kept)
        elif event.type == ev.RESTORED:
            restored = ev.ArchiveRestored.model_validate(event.data)
            for flow_id in restored.flows:
                folded.flows.pop(flow_id, None)
    if row["id"] is not None:
        folded.archives[archive_id] = row


def _drop(folded: _Folded, archive_id: str, flow_ids: list[str]) -> None:
    for flow_id in flow_ids:
        if folded.flows.get(flow_id, {}).get("archive_id") == archive_id:
            del folded.flows[flow_id]


async def _folds(conn: Executor) -> _Folded:
    streams = await streams_under(conn, ev.ARCHIVE_STREAM)
    folded = _Folded()
    # In the order the archives were made: a flow archived, restored and archived again
    # ends in its latest archive.
    for stream in sorted(streams.values(), key=lambda s: s[0].position):
        _fold(stream, folded)
    return folded


async def rebuild_archives(pool: asyncpg.Pool) -> int:
    """Writes every archive's rows from its stream; returns how many archives."""
    async with pool.acquire() as conn, conn.transaction():
        folded = await _folds(conn)
        await conn.execute("DELETE FROM archived_flows")
        await conn.execute("DELETE FROM archives")
        await conn.copy_records_to_table(
            "archives", records=[tuple(r[c] for c in ARCHIVE_COLUMNS)
                                 for r in folded.archives.values()],
            columns=ARCHIVE_COLUMNS,
        )  # fmt: skip
        await conn.copy_records_to_table(
            "archived_flows", records=[tuple(r[c] for c in FLOW_COLUMNS)
                                       for r in folded.flows.values()],
            columns=FLOW_COLUMNS,
        )  # fmt: skip
    return len(folded.archives)


async def verify_archives(pool: asyncpg.Pool) -> ArchiveCheck:
    """Every difference between the rows and the folds of the archive streams (one
    snapshot: each archive event writes its rows in the same statement)."""
    check = ArchiveCheck()
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        folded = await _folds(conn)
        archives = {r["id"]: dict(r) for r in await conn.fetch(_ARCHIVE_ROWS)}
        flows = {r["flow_id"]: dict(r) for r in await conn.fetch(_FLOW_ROWS)}
    check.archives = len(folded.archives)
    check.differences = [
        *drift(folded.archives, archives, lambda key: f"archives {key}", "the log"),
        *drift(folded.flows, flows, lambda key: f"archived_flows {key}", "the log"),
    ]
    return check
