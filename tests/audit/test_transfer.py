"""Export and import: the log taken elsewhere comes back whole, with the same projections, and
a file that is not whole (cut, altered, partial streams) or a target that is not empty is
refused without writing anything."""

from __future__ import annotations

import gzip
import io
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from flowlog.archive.format import TransferError
from flowlog.audit.transfer import Selection, export_log, import_log
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, connect, create_pool
from flowlog.migrate import migrate_database
from flowlog.projections.verify import verify
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.definition import Registry
from flowlog.workflow.projection import PROJECTOR
from tests.workflow.defs import backup_flow, pausing_flow, polling_flow
from tests.workflow.test_properties import RETRYING, write_random_history

# Flows in every state the engine can leave one in, driven as the service and reactor would.
SCRIPTS: list[tuple[Any, list[object]]] = [
    (backup_flow(), ["start", "succeed", "succeed", "succeed"]),  # Finished
    (backup_flow(), ["start", ("fail", 1), "succeed"]),  # handler ran, Error
    (backup_flow(), ["start", "stop"]),  # Stopped while a node ran
    (backup_flow(), ["start", "cancel", "canceled"]),  # Canceled
    (backup_flow(), [("context", "a", 1)]),  # Initializing
    (pausing_flow(), ["start", ("fail", 1)]),  # paused on a failed node
    (polling_flow(), ["start", "submit"]),  # a polling node waiting (Processing)
    (RETRYING, ["start", ("fail", 1)]),  # a retry due later (Processing)
]

TABLES = {
    "workflows": "SELECT * FROM workflows ORDER BY id",
    "workflow_nodes": "SELECT * FROM workflow_nodes ORDER BY id",
    "workflow_definitions": "SELECT * FROM workflow_definitions ORDER BY name, version",
    "counts": "SELECT name, status, sum(count) FROM workflow_counts GROUP BY 1, 2 "
    "HAVING sum(count) <> 0 ORDER BY 1, 2",
    "work": "SELECT flow_id, definition_version, status, stream_version FROM flow_work "
    "ORDER BY flow_id",
    "log": "SELECT stream_id, version, type, data, metadata, recorded_at FROM events "
    "ORDER BY transaction_id, position",
    "schedules": "SELECT id, tenant_id, flow_name, status, spec, next_fire_at, last_fire_at, "
    "last_flow_id, fires, skipped, stream_version, created_at, updated_at FROM schedules "
    "ORDER BY id",
}


async def _fill(url: str) -> list[str]:
    """Definitions recorded and one flow per script; returns the flow ids."""
    registry = Registry([backup_flow(), pausing_flow(), polling_flow(), RETRYING])
    async with Engine(url, registry, run_reactor=False) as engine:  # records the definitions
        nightly = ScheduleSpec(flowName="backup", cron="0 2 * * *", timezone="Europe/Berlin")
        await engine.schedules.create("nightly", nightly)
        hourly = ScheduleSpec(flowName="backup", intervalSeconds=3600)
        await engine.schedules.create("hourly", hourly, paused=True)
    pool = await create_pool(url, max_size=2)
    try:
        store = EventStore(pool)
        ids = []
        for definition, actions in SCRIPTS:
            flow_id = str(uuid.uuid4())
            await write_random_history(store, definition, actions, flow_id)
            ids.append(flow_id)
        return ids
    finally:
        await pool.close()


async def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await connect(url)
    try:
        return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in TABLES.items()}
    finally:
        await conn.close()


async def _export(url: str, selection: Selection | None = None) -> bytes:
    out = io.BytesIO()
    await export_log(url, out, selection or Selection(), progress=False)
    return out.getvalue()


async def _event_count(url: str) -> int:
    conn = await connect(url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM events")
        return count
    finally:
        await conn.close()


async def test_an_export_imports_into_an_empty_database_whole(
    database_url: str, empty_database_url: str
) -> None:
    await _fill(database_url)
    exported = await _export(database_url)
    report = await import_log(empty_database_url, io.BytesIO(exported), progress=False)

    source, target = await _snapshot(database_url), await _snapshot(empty_database_url)
    assert report.events == len(source["log"]) == len(exported.splitlines()) - 2
    assert report.flows == len(SCRIPTS)
    for table in TABLES:
        assert target[table] == source[table], table
    # Unfinished flows got their work rows back (the same as the source's, compared above).
    assert {row[2] for row in target["work"]} == {"Processing", "Stopped"}
    pool = await create_pool(empty_database_url, max_size=2)
    try:
        checked = await verify(EventStore(pool), PROJECTOR, progress=False)
    finally:
        await pool.close()
    assert checked.ok, checked.differences
    assert checked.flows == len(SCRIPTS)
    # Exporting the copy gives the same events again (positions are the new database's).
    again = [orjson.loads(line) for line in (await _export(empty_database_url)).splitlines()]
    first = [orjson.loads(line) for line in exported.splitlines()]
    strip = [{k: v for k, v in e.items() if k != "position"} for e in first[1:-1]]
    assert [{k: v for k, v in e.items() if k != "position"} for e in again[1:-1]] == strip
    assert again[-1]["events"] == first[-1]["events"]


async def test_one_flow_exports_alone_and_imports(
    database_url: str, empty_database_url: str
) -> None:
    flow_ids = await _fill(database_url)
    exported = await _export(database_url, Selection(flow_id=flow_ids[1]))
    lines = [orjson.loads(line) for line in exported.splitlines()]
    header, events, trailer = lines[0], lines[1:-1], lines[-1]
    assert header["selection"]["flow"] == flow_ids[1]
    assert header["events"] == trailer["events"] == len(events)
    assert {e["stream_id"] for e in events} == {f"flow-{flow_ids[1]}"}
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    await import_log(empty_database_url, io.BytesIO(exported), progress=False)
    target = await _snapshot(empty_database_url)
    assert [row[0] for row in target["workflows"]] == [flow_ids[1]]
    assert target["workflows"][0][4] == "Error"


async def test_a_gzip_file_round_trips(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    await _fill(database_url)
    path = tmp_path / "log.jsonl.gz"
    with gzip.open(path, "wb") as out:
        await export_log(database_url, out, Selection(), progress=False)  # type: ignore[arg-type]
    with gzip.open(path, "rb") as source:
        await import_log(empty_database_url, source, progress=False)  # type: ignore[arg-type]
    assert (await _snapshot(empty_database_url))["log"] == (await _snapshot(database_url))["log"]


def _altered(exported: bytes) -> bytes:
    lines = exported.splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"version":', b'"version": ', 1).replace(b"Node", b"Nope", 1)
    return b"".join(lines)


REFUSED: list[tuple[str, Any, str]] = [
    ("cut", lambda e: b"".join(e.splitlines(keepends=True)[:-3]), "cut short"),
    ("altered", _altered, "checksum"),
    (
        "miscounted",
        lambda e: e.replace(b'{"end":true,"events":', b'{"end":true,"events":1'),
        "counts",
    ),
    ("no header", lambda e: b"".join(e.splitlines(keepends=True)[1:]), "not a flowlog export"),
    ("not json", lambda e: b"hello\n" + e, "not a flowlog export"),
    ("new format", lambda e: e.replace(b'"formatVersion":1', b'"formatVersion":9', 1), "version 9"),
    ("bad line", lambda e: e.replace(b"\n", b"\n{oops\n", 2), "not JSON"),
]


@pytest.mark.parametrize(("case", "spoil", "says"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_a_spoiled_file_is_refused_and_writes_nothing(
    database_url: str, empty_database_url: str, case: str, spoil: Any, says: str
) -> None:
    await _fill(database_url)
    exported = await _export(database_url)
    with pytest.raises(TransferError, match=says):
        await import_log(empty_database_url, io.BytesIO(spoil(exported)), progress=False)
    assert await _event_count(empty_database_url) == 0


async def test_a_partial_time_range_cannot_be_imported(
    database_url: str, empty_database_url: str
) -> None:
    await _fill(database_url)
    conn = await connect(database_url)
    try:
        # From the middle of the first flow's history on: its stream would start at version > 1.
        middle = await conn.fetchval(
            "SELECT recorded_at FROM events WHERE stream_id LIKE 'flow-%' ORDER BY position "
            "OFFSET 2 LIMIT 1"
        )
    finally:
        await conn.close()
    exported = await _export(database_url, Selection(since=middle))
    header = orjson.loads(exported.splitlines()[0])
    assert header["selection"]["since"] is not None
    assert 0 < header["events"] < await _event_count(database_url)
    with pytest.raises(TransferError, match="streams are not whole"):
        await import_log(empty_database_url, io.BytesIO(exported), progress=False)
    assert await _event_count(empty_database_url) == 0


async def test_a_database_with_events_is_not_a_target(database_url: str) -> None:
    await _fill(database_url)
    before = await _event_count(database_url)
    exported = await _export(database_url)
    with pytest.raises(TransferError, match="already has events"):
        await import_log(database_url, io.BytesIO(exported), progress=False)
    assert await _event_count(database_url) == before


async def test_the_target_is_migrated_first(empty_database_url: str, database_url: str) -> None:
    """An empty database with no schema at all is a fine target."""
    await _fill(database_url)
    await import_log(empty_database_url, io.BytesIO(await _export(database_url)), progress=False)
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") >= 4
    finally:
        await conn.close()
    await migrate_database(empty_database_url)  # and stays migrated: nothing left to apply
