"""Retention and archival (issue 14): ended flows past their retention leave the hot log for
archive files through one audited path, and can be read and restored from there."""

from __future__ import annotations

import asyncio
import gzip
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from flowlog.archive import events as ev
from flowlog.archive.archiver import Archiver, ArchiveReport
from flowlog.archive.files import read_archive, recorded
from flowlog.archive.format import TransferError
from flowlog.archive.policy import ArchiveSettings, Retention
from flowlog.archive.reading import ArchivedFlowInfo, archived, archived_records
from flowlog.archive.rebuild import rebuild_archives, verify_archives
from flowlog.archive.restore import restore_archive
from flowlog.archive.retention import store_retention
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, RecordedEvent, Subscription, create_pool
from flowlog.eventstore.errors import RemovedEvents
from flowlog.projections.verify import verify
from flowlog.schedules.rebuild import verify_schedules
from flowlog.workflow.caller import Caller
from flowlog.workflow.commands import ArchiveFlow
from flowlog.workflow.decide import decide
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.state import FlowStatus
from flowlog.workflow.streams import flow_stream
from tests.engines import StartEngine
from tests.helpers import cli_env, run_flowlog
from tests.workflow.defs import backup_flow
from tests.workflow.helpers import wait_for_status

NOW = Retention(default=timedelta(0))
"""Every ended flow is past its retention at once."""


async def finished_flows(engine: Engine, count: int, name: str = "backup") -> list[str]:
    ids = []
    for n in range(count):
        state = await engine.service.create(f"b{n}", "t", name, start=True)
        ids.append(state.flow_id)
    for flow_id in ids:
        await wait_for_status(engine.service, flow_id, {FlowStatus.FINISHED})
    return ids


async def archiver(
    database_url: str, engine: Engine, directory: Path, retention: Retention = NOW, **kw: int
) -> Archiver:
    """An archiver of ``engine`` (the runtime role), once the owner set ``retention``."""
    await owner_sets(database_url, retention)
    return Archiver(EventStore(engine.pool), ArchiveSettings(directory, **kw))


async def archive(
    database_url: str, engine: Engine, directory: Path, retention: Retention = NOW, **kw: int
) -> ArchiveReport:
    """One archive run of ``engine`` once the owner set ``retention``."""
    return await (await archiver(database_url, engine, directory, retention, **kw)).run()


async def owner_sets(database_url: str, retention: Retention) -> None:
    """The owner's retention in the database (what `flowlog migrate` writes)."""
    conn = await asyncpg.connect(database_url)
    try:
        await store_retention(conn, retention)
    finally:
        await conn.close()


async def archived_events(info: ArchivedFlowInfo, directory: Path) -> list[RecordedEvent]:
    """The flow's events as its archive holds them, checksums checked."""
    return [recorded(r) for r in await archived_records(info, directory)]


async def verified(database_url: str) -> None:
    """``flowlog verify`` holds: the projections are exactly the log's fold."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        checked = await verify(EventStore(pool), PROJECTOR, progress=False)
        scheduled = await verify_schedules(pool)
        archives = await verify_archives(pool)
        assert checked.differences == []
        assert scheduled.differences == []
        assert archives.differences == []
        # Rebuilt from the log, the archives' rows come out the same.
        await rebuild_archives(pool)
        assert (await verify_archives(pool)).differences == []
    finally:
        await pool.close()


async def test_nothing_is_archived_while_retention_is_off_or_not_yet_due(
    start_engine: StartEngine, database_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow())
    await finished_flows(engine, 3)
    assert not Retention().enabled
    report = await archive(database_url, engine, tmp_path, Retention())
    assert (report.flows, report.archives) == (0, [])
    a_day = Retention(default=timedelta(days=1))
    dry = await (await archiver(database_url, engine, tmp_path, a_day)).dry_run()
    assert dry.would_archive == {}
    assert (await archive(database_url, engine, tmp_path, a_day)).flows == 0
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


async def test_ended_flows_leave_the_hot_log_for_a_checksummed_archive_recorded_in_the_log(
    start_engine: StartEngine, database_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow())
    ended = await finished_flows(engine, 5)
    waiting = (await engine.service.create("w", "t", "backup")).flow_id  # never started
    dry = await (await archiver(database_url, engine, tmp_path)).dry_run()
    assert dry.would_archive == {"backup": 5}

    report = await archive(database_url, engine, tmp_path, batch=2, chunk=1)
    assert (report.flows, report.removed, report.kept, report.dropped) == (5, 5, 0, 0)
    assert len(report.archives) == 3  # two flows an archive
    pool = engine.pool
    for flow_id in ended:
        assert await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1",
                                   flow_stream(flow_id)) == 0  # fmt: skip
        assert await pool.fetchval("SELECT count(*) FROM workflows WHERE id = $1", flow_id) == 0
    assert (await engine.service.get(waiting)).status is FlowStatus.INITIALIZING
    assert await pool.fetchval("SELECT sum(count) FROM workflow_counts") == 1

    # The log says what left it, when, by whom, to which file, with which checksum.
    archive_id = report.archives[0]
    recorded = await EventStore(pool).read_stream(ev.archive_stream(archive_id))
    assert [e.type for e in recorded] == [ev.PLANNED, ev.WRITTEN, ev.REMOVED]
    assert all(e.metadata["actor"] == "archiver" for e in recorded)
    written = ev.ArchiveWritten.model_validate(recorded[1].data)
    header, lines = read_archive(Path(written.file), written.sha256)
    assert header["selection"] == {"archive": archive_id}
    assert {line["stream_id"] for line in lines} == {flow_stream(f.id) for f in written.flows}
    assert [line["type"] for line in lines][-1] == "FlowArchived"
    assert len(lines) == written.events
    assert await pool.fetchval("SELECT count(*) FROM log_removals") == 5  # a chunk a flow
    row = await pool.fetchrow("SELECT status, flows, removed FROM archives WHERE id = $1",
                              archive_id)  # fmt: skip
    assert dict(row) == {"status": "Removed", "flows": 2, "removed": 2}

    # Read back from the archive: the same events the log held, seal last.
    info = await archived(pool, written.flows[0].id)
    assert info is not None
    assert info.archive_id == archive_id
    events = await archived_events(info, tmp_path)
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "FlowCreated"
    assert events[-1].type == "FlowArchived"
    await verified(database_url)


async def test_per_definition_retention_and_off_keep_their_flows(
    start_engine: StartEngine, database_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow(), backup_flow("keeper"), backup_flow("brief"))
    await finished_flows(engine, 2)
    kept = await finished_flows(engine, 2, "keeper")
    brief = await finished_flows(engine, 2, "brief")
    retention = Retention(
        default=timedelta(days=30), by_definition={"keeper": None, "brief": timedelta(0)}
    )
    report = await archive(database_url, engine, tmp_path, retention)
    assert report.flows == 2
    assert {(await archived(engine.pool, f)) is not None for f in brief} == {True}
    assert {(await archived(engine.pool, f)) is None for f in kept} == {True}
    off = Retention(default=timedelta(0), by_definition={"keeper": None})
    assert (
        await archive(database_url, engine, tmp_path, off)
    ).flows == 2  # backup's; never keeper's
    assert {(await engine.service.get(f)).status for f in kept} == {FlowStatus.FINISHED}


async def test_a_restored_archive_brings_its_flows_back_whole(
    start_engine: StartEngine, database_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow())
    ended = await finished_flows(engine, 3)
    before = {f: [e.type for e in await engine.service.store.read_stream(flow_stream(f))]
              for f in ended}  # fmt: skip
    report = await archive(database_url, engine, tmp_path)
    (archive_id,) = report.archives
    file = tmp_path / f"{archive_id}.jsonl.gz"

    restored = await restore_archive(database_url, file, Caller(actor="restorer"))
    assert (restored.flows, restored.skipped) == (3, 0)
    for flow_id in ended:
        stream = await engine.service.store.read_stream(flow_stream(flow_id))
        assert [e.type for e in stream] == [*before[flow_id], "FlowArchived", "FlowRestored"]
        state = await engine.service.get(flow_id)
        assert (state.status, state.archived) == (FlowStatus.FINISHED, False)
        assert await archived(engine.pool, flow_id) is None
    again = await restore_archive(database_url, file, Caller(actor="restorer"))
    assert (again.flows, again.skipped) == (0, 3)  # already in the hot log
    history = await engine.service.store.read_stream(ev.archive_stream(archive_id))
    assert history[-1].type == ev.RESTORED
    await verified(database_url)
    # Restored flows age again from their restore: archived anew by the next run.
    assert (await archive(database_url, engine, tmp_path)).flows == 3


async def test_flows_the_database_keeps_take_commands_again(
    start_engine: StartEngine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await start_engine(backup_flow())
    ended = await finished_flows(engine, 2)
    remove = Archiver._remove

    async def lengthened(self: Archiver, *args: Any) -> None:
        # The owner lengthens the retention after the flows were sealed and written.
        await owner_sets(database_url, Retention(default=timedelta(days=1)))
        await remove(self, *args)

    monkeypatch.setattr(Archiver, "_remove", lengthened)
    report = await archive(database_url, engine, tmp_path)
    assert (report.flows, report.removed, report.kept) == (2, 0, 2)
    for flow_id in ended:
        stream = await engine.service.store.read_stream(flow_stream(flow_id))
        assert [e.type for e in stream][-3:] == ["FlowFinished", "FlowArchived", "FlowRestored"]
        state = await engine.service.get(flow_id)
        assert (state.status, state.archived) == (FlowStatus.FINISHED, False)
        assert await archived(engine.pool, flow_id) is None
    monkeypatch.undo()
    await verified(database_url)
    # Once their retention is over, a later run archives them.
    assert (await archive(database_url, engine, tmp_path)).removed == 2


async def test_an_altered_archive_is_refused(
    start_engine: StartEngine, database_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow())
    await finished_flows(engine, 1)
    (archive_id,) = (await archive(database_url, engine, tmp_path)).archives
    file = tmp_path / f"{archive_id}.jsonl.gz"
    with gzip.open(file, "rb") as original:
        lines = original.read().splitlines()
    event = orjson.loads(lines[1])
    event["data"]["biz_id"] = "forged"
    lines[1] = orjson.dumps(event)
    with gzip.open(file, "wb") as forged:
        forged.write(b"\n".join(lines) + b"\n")
    with pytest.raises(TransferError, match=r"altered|checksum"):
        await restore_archive(database_url, file, Caller(actor="restorer"))
    info = await archived(engine.pool, event["stream_id"].removeprefix("flow-"))
    assert info is not None
    with pytest.raises(TransferError, match="altered"):
        await archived_events(info, tmp_path)


async def test_only_the_audited_path_deletes_from_the_log(
    start_engine: StartEngine, database_url: str, runtime_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow())
    live, ended = await finished_flows(engine, 2)
    events = await engine.service.store.stream_version(flow_stream(live))
    runtime = await asyncpg.connect(runtime_url)
    owner = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute("DELETE FROM events WHERE stream_id = $1", flow_stream(live))
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await owner.execute("DELETE FROM events WHERE stream_id = $1", flow_stream(live))
        # The runtime role may call the removal, which finds no recorded archive...
        with pytest.raises(asyncpg.PostgresError, match="no archive"):
            await runtime.fetchval("SELECT flowlog_remove_archived('archive-x', $1)", [live])
        # ...and a forged record of one removes nothing that is not sealed at that version.
        forged = {"flows": [{"id": live, "version": events}], "file": "x"}
        await runtime.execute(
            "INSERT INTO events (stream_id, version, type, data, metadata) "
            "VALUES ('archive-forged', 1, 'ArchiveWritten', $1::jsonb, '{}')",
            orjson.dumps(forged).decode(),
        )
        assert (
            await runtime.fetchval("SELECT flowlog_remove_archived('archive-forged', $1)", [live])
            == 0
        )
        assert (
            await runtime.fetchval(
                "SELECT count(*) FROM events WHERE stream_id = $1", flow_stream(live)
            )
            == events
        )
    finally:
        await runtime.close()
        await owner.close()
    assert (await archive(database_url, engine, tmp_path)).flows == 2
    assert ended != live


async def test_a_sealed_flow_takes_no_command(start_engine: StartEngine, tmp_path: Path) -> None:
    engine = await start_engine(backup_flow())
    (flow_id,) = await finished_flows(engine, 1)
    state = await engine.service.get(flow_id)
    seal = decide(state, ArchiveFlow("a1"), None, state.updated_at)
    sealed = await engine.service.flows.append(state, seal)
    assert sealed.archived
    for command in (engine.service.start(flow_id), engine.service.retry(flow_id, {})):
        with pytest.raises(WorkflowError) as refused:
            await command
        assert refused.value.code is Code.FLOW_ARCHIVED


async def test_a_subscription_behind_archived_events_stops_with_a_clear_error(
    start_engine: StartEngine, database_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow())
    store = engine.service.store
    seen: list[str] = []

    async def handle(tx: object, events: list[object]) -> None:
        seen.extend(e.stream_id for e in events)  # type: ignore[attr-defined]

    early = Subscription(store, "early", handle)
    await early.register()
    await finished_flows(engine, 2)
    await archive(database_url, engine, tmp_path)
    with pytest.raises(RemovedEvents, match="removed from the log by archive-"):
        await early.run_batch()
    assert seen == []
    horizon = await store.removal_horizon()
    assert horizon is not None
    late = Subscription(store, "late", handle, start=horizon)
    await late.register()
    # The archive's own events come after the removal. Another test's open transaction on
    # the same server may hold them back a moment (the log is read below the horizon).
    async with asyncio.timeout(20):
        while (outcome := await late.run_batch()).held_back and not outcome.handled:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert outcome.handled > 0


async def test_history_and_replay_of_an_altered_archive_say_which_file_and_check_in_one_line(
    start_engine: StartEngine, database_url: str, tmp_path: Path
) -> None:
    engine = await start_engine(backup_flow())
    (flow_id,) = await finished_flows(engine, 1)
    (archive_id,) = (await archive(database_url, engine, tmp_path)).archives
    file = tmp_path / f"{archive_id}.jsonl.gz"
    env = cli_env(DATABASE_URL=database_url, FLOWLOG_ARCHIVE_DIR=str(tmp_path))
    with gzip.open(file, "ab") as appended:
        appended.write(b'{"forged": true}\n')
    for command in ("history", "replay"):
        done = await asyncio.to_thread(run_flowlog, command, flow_id, env=env)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"flowlog {command}: archive {archive_id} of flow {flow_id}: ")
        assert str(file) in line
        assert "checksum" in line
    # Without a recorded checksum (a restore's first read), a cut or foreign file is refused
    # as such too, never with a decoder's exception.
    whole = file.read_bytes()
    for broken in (whole[: len(whole) // 2], b"not gzip at all"):
        file.write_bytes(broken)
        with pytest.raises(TransferError, match="not a readable archive"):
            read_archive(file)
    file.unlink()
    missing = await asyncio.to_thread(run_flowlog, "history", flow_id, env=env)
    assert missing.returncode == 1
    (line,) = missing.stderr.strip().splitlines()
    assert f"is not at {file}" in line
