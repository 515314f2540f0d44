"""Bringing archived flows back into the hot log (``flowlog import ARCHIVE``).

Each flow's events go back into the log as the archive holds them (streams, versions, types,
data, metadata and recorded times; positions are new), ending with its seal; then a
``FlowRestored`` event lifts the seal and writes the flow's rows again, and the archive's
stream records which flows came back. A flow already in the hot log is left as it is, and a
restore that stopped half way is finished by running it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from flowlog.archive import events as ev
from flowlog.archive.files import archive_id_in, file_sha256, read_archive
from flowlog.archive.format import COLUMNS, TransferError
from flowlog.archive.queries import Q
from flowlog.eventstore import AppendAlso, EventStore, NewEvent, connect, create_pool
from flowlog.workflow.caller import Caller
from flowlog.workflow.events import FlowRestored
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.streams import FLOW_STREAM, fold_recorded


@dataclass(slots=True)
class RestoreReport:
    archive_id: str = ""
    flows: int = 0
    events: int = 0
    skipped: int = 0
    """Flows of the archive already in the hot log (restored before, or never removed)."""


async def restore_archive(owner_url: str, path: Path, caller: Caller) -> RestoreReport:
    """Restores every flow of the archive at ``path`` that is not in the hot log."""
    archive_id = archive_id_in(path)
    if archive_id is None:
        raise TransferError(f"{path} is not an archive")
    _, records = await asyncio.to_thread(read_archive, path)
    report = RestoreReport(archive_id=archive_id)
    pool = await create_pool(owner_url, min_size=1, max_size=4)
    try:
        store = EventStore(pool)
        row = await pool.fetchrow(Q.archive_row, archive_id)
        if row is not None and row["sha256"] and row["sha256"] != file_sha256(path):
            raise TransferError(f"{path} is not the file archive {archive_id} recorded: altered")
        streams = {
            stream_id: list(group)
            for stream_id, group in groupby(records, key=lambda r: str(r["stream_id"]))
        }
        present = {r["stream_id"] for r in await pool.fetch(Q.stream_heads, list(streams))}
        missing = [s for s in streams if s not in present]
        await _copy(owner_url, [r for s in missing for r in streams[s]])
        report.events = sum(len(streams[s]) for s in missing)
        flows = FlowRepository(store)
        restored: list[str] = []
        for stream_id in streams:
            stored = await store.read_stream(stream_id)
            state = fold_recorded(stored)
            sealed_here = stored[-1].type == "FlowArchived" and (
                stored[-1].data.get("archive_id") == archive_id
            )
            if state is None or not sealed_here:
                report.skipped += 1
                continue
            restore = [FlowRestored(archive_id=archive_id)]
            await flows.append_recorded(state, restore, caller, rows_absent=True)
            restored.append(stream_id.removeprefix(FLOW_STREAM))
        report.flows = len(restored)
        if restored and row is not None:
            version = await store.stream_version(ev.archive_stream(archive_id))
            event = ev.ArchiveRestored(flows=restored)
            await store.append(
                ev.archive_stream(archive_id),
                [NewEvent(ev.RESTORED, event.data(), caller.metadata())],
                version,
                also=AppendAlso.of(
                    (Q.project_restored, (restored,)), (Q.project_touched, (archive_id,))
                ),
            )
    finally:
        await pool.close()
    return report


async def _copy(owner_url: str, records: list[dict[str, Any]]) -> None:
    """The events into the log, in one transaction (the owner's right: the recorded times
    are the archive's)."""
    if not records:
        return
    rows = [
        (
            r["stream_id"], r["version"], r["type"], r["data"], r["metadata"],
            datetime.fromisoformat(r["recorded_at"]),
        )
        for r in records
    ]  # fmt: skip
    conn = await connect(owner_url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("events", records=rows, columns=COLUMNS)
    finally:
        await conn.close()
