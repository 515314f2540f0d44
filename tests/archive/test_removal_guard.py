"""What the runtime role can remove from the hot log: flowlog_remove_archived() called as the
runtime role, after that role forged the records an archive run makes (a seal, and an
ArchiveWritten event naming it). The database cannot see files, so it checks what it knows:
the flow had ended before its seal, its end is older than the owner's retention, and its seal
names the archive that asks. Anything else stays, events and rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from flowlog.archive.policy import Retention
from flowlog.archive.retention import load_retention, store_retention
from flowlog.engine import Engine
from flowlog.workflow.definition import Registry
from flowlog.workflow.streams import flow_stream
from tests.archive.test_archival import owner_sets
from tests.helpers import cli_env, run_flowlog

REMOVE = "SELECT flowlog_remove_archived($1, $2::text[])"


@pytest.fixture
async def runtime(runtime_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(runtime_url)
    yield conn
    await conn.close()


async def append(conn: asyncpg.Connection, stream: str, type_: str, data: object) -> int:
    """A raw append as the runtime role may make it: at the stream's next version."""
    version = await conn.fetchval(
        "SELECT coalesce(max(version), 0) + 1 FROM events WHERE stream_id = $1", stream
    )
    await conn.execute(
        "INSERT INTO events (stream_id, version, type, data, metadata) "
        "VALUES ($1, $2, $3, $4::jsonb, '{\"actor\": \"forger\"}')",
        stream, version, type_, orjson.dumps(data).decode(),
    )  # fmt: skip
    return int(version)


async def forge(conn: asyncpg.Connection, flow_id: str, archive: str, seal_names: str) -> None:
    """A seal at the flow's next version naming ``seal_names``, and an ArchiveWritten in
    ``archive-<archive>`` holding the flow at that version (and no file anywhere)."""
    version = await append(conn, flow_stream(flow_id), "FlowArchived", {"archive_id": seal_names})
    written = {"file": "/nowhere", "flows": [{"id": flow_id, "version": version}]}
    await append(conn, f"archive-{archive}", "ArchiveWritten", written)


async def still_there(conn: asyncpg.Connection, flow_id: str) -> tuple[int, int]:
    """The flow's events and rows in the hot log."""
    events = await conn.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1", flow_stream(flow_id)
    )
    rows = await conn.fetchval("SELECT count(*) FROM workflows WHERE id = $1", flow_id)
    return int(events), int(rows)


async def canceled(api: Engine) -> str:
    state = await api.service.create("b", "t", "proc")
    await api.service.cancel(state.flow_id, "not needed")
    return state.flow_id


async def test_a_forged_archive_removes_no_running_flow(
    api: Engine, database_url: str, runtime: asyncpg.Connection
) -> None:
    # Retention 0s: only the flow's running keeps it.
    await owner_sets(database_url, Retention(default=timedelta(0)))
    running = (await api.service.create("b", "t", "proc", start=True)).flow_id
    assert (await api.service.get(running)).status.value == "Processing"
    before = await still_there(runtime, running)
    await forge(runtime, running, "forged", seal_names="forged")

    assert await runtime.fetchval(REMOVE, "archive-forged", [running]) == 0
    assert await still_there(runtime, running) == (before[0] + 1, 1)  # its seal is the forger's
    assert await runtime.fetchval("SELECT count(*) FROM log_removals") == 0
    assert (await api.service.get(running)).status.value == "Processing"


async def test_a_seal_naming_another_archive_is_not_removed_by_this_one(
    api: Engine, database_url: str, runtime: asyncpg.Connection
) -> None:
    await owner_sets(database_url, Retention(default=timedelta(0)))
    flow_id = await canceled(api)
    # Sealed for archive "real"; a forged archive claims it.
    await forge(runtime, flow_id, "other", seal_names="real")
    assert await runtime.fetchval(REMOVE, "archive-other", [flow_id]) == 0
    assert (await still_there(runtime, flow_id))[1] == 1
    # The archive its seal names removes it.
    version = await runtime.fetchval(
        "SELECT max(version) FROM events WHERE stream_id = $1", flow_stream(flow_id)
    )
    written = {"flows": [{"id": flow_id, "version": version}]}
    await append(runtime, "archive-real", "ArchiveWritten", written)
    assert await runtime.fetchval(REMOVE, "archive-real", [flow_id]) == 1
    assert await still_there(runtime, flow_id) == (0, 0)


async def test_an_end_younger_than_the_owners_retention_is_not_removed(
    api: Engine, database_url: str, runtime: asyncpg.Connection
) -> None:
    flow_id = await canceled(api)
    await forge(runtime, flow_id, "young", seal_names="young")
    # Never set: off.
    assert await runtime.fetchval(REMOVE, "archive-young", [flow_id]) == 0
    await owner_sets(database_url, Retention(default=timedelta(days=1)))
    assert await runtime.fetchval(REMOVE, "archive-young", [flow_id]) == 0
    # Off for its definition, whatever the default.
    await owner_sets(database_url, Retention(timedelta(0), {"proc": None}))
    assert await runtime.fetchval(REMOVE, "archive-young", [flow_id]) == 0
    assert (await still_there(runtime, flow_id))[1] == 1
    # Once its end is older than the owner's retention, it may leave.
    await owner_sets(database_url, Retention(timedelta(days=1), {"proc": timedelta(0)}))
    assert await runtime.fetchval(REMOVE, "archive-young", [flow_id]) == 1
    assert await still_there(runtime, flow_id) == (0, 0)


async def test_the_runtime_role_cannot_change_the_retention_nor_delete_by_hand(
    database_url: str, runtime: asyncpg.Connection
) -> None:
    await owner_sets(database_url, Retention(default=timedelta(days=30)))
    for statement in (
        "UPDATE archive_retention SET keep = interval '0'",
        "DELETE FROM archive_retention",
        "INSERT INTO archive_retention (definition, keep) VALUES ('proc', interval '0')",
        "TRUNCATE archive_retention",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(statement)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await store_retention(runtime, Retention(default=timedelta(0)))
    # The mark the removal sets for the log's trigger gives it no DELETE right.
    async with runtime.transaction():
        await runtime.execute("SET LOCAL flowlog.removing = 'archive-x'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute("DELETE FROM events")
    assert (await load_retention(runtime)).retention == Retention(default=timedelta(days=30))


async def test_the_environment_seeds_the_retention_only_through_the_owner(
    database_url: str, runtime_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = cli_env(
        DATABASE_URL=runtime_url, FLOWLOG_RETENTION="0s", FLOWLOG_ARCHIVE_DIR=str(tmp_path)
    )
    refused = await asyncio.to_thread(run_flowlog, "migrate", env=env)
    assert refused.returncode == 1
    assert "may not change it" in refused.stderr
    # A process that serves as the runtime role starts, and the database's applies.
    seed = Retention(default=timedelta(0))
    async with Engine(runtime_url, Registry(), run_reactor=False, retention=seed):
        pass
    assert "the database's applies" in caplog.text
    conn = await asyncpg.connect(database_url)
    try:
        assert (await load_retention(conn)).retention == Retention()  # never set: off
        done = await asyncio.to_thread(
            run_flowlog, "migrate", env={**env, "FLOWLOG_OWNER_URL": database_url}
        )
        assert done.returncode == 0, done.stderr
        assert "retention in the database: default 0s" in done.stdout
        stored = await load_retention(conn)
        assert stored.retention == Retention(default=timedelta(0))
        assert stored.set_at is not None
    finally:
        await conn.close()
