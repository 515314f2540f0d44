"""Rebuild and verify: the log folded into the tables, while the service runs."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import asyncpg
import pytest

from flowlog.engine import Engine
from flowlog.eventstore import EventStore
from flowlog.projections import rebuild as rebuild_module
from flowlog.projections.rebuild import rebuild
from flowlog.projections.verify import verify
from flowlog.workflow.definition import Registry
from flowlog.workflow.projection import PROJECTOR
from tests.engines import StartEngine
from tests.helpers import QUIET, cli_env, run_flowlog
from tests.workflow.defs import backup_flow, pausing_flow

TABLES = {
    "workflows": "SELECT * FROM workflows ORDER BY id",
    "workflow_nodes": "SELECT * FROM workflow_nodes ORDER BY id",
    "workflow_definitions": "SELECT * FROM workflow_definitions ORDER BY version",
    "counts": "SELECT tenant_id, name, biz_type, status, sum(count) FROM workflow_counts "
    "GROUP BY 1, 2, 3, 4 HAVING sum(count) <> 0 ORDER BY 1, 2, 3, 4",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
    "AND tablename LIKE 'workflow%' ORDER BY 1",
}


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[tuple[object, ...]]]:
    return {name: [tuple(r) for r in await pool.fetch(sql)] for name, sql in TABLES.items()}


async def make_flows(engine: Engine, count: int) -> list[str]:
    service = engine.service
    ids = []
    for n in range(count):
        flow_id = (
            await service.create(f"b{n}", "cluster", "backup", tenant_id=f"t{n % 3}")
        ).flow_id
        if n % 4 == 0:
            await service.stop(flow_id)
        elif n % 4 == 1:
            await service.start(flow_id)
        ids.append(flow_id)
    return ids


@pytest.mark.parametrize("jobs", [1, 2])
async def test_rebuild_reproduces_the_inline_tables_exactly(
    start_engine: StartEngine, store: EventStore, database_url: str, jobs: int
) -> None:
    engine = await start_engine(backup_flow(), pausing_flow())
    await make_flows(engine, 40)
    await asyncio.sleep(1)  # let the reactor finish what it can
    before = await snapshot(engine.pool)

    report = await rebuild(store, PROJECTOR, progress=False, jobs=jobs, url=database_url)

    assert report.flows == 40
    assert await snapshot(engine.pool) == before
    checked = await verify(engine.service.store, PROJECTOR, progress=False)
    assert checked.ok, checked.differences
    assert checked.flows == 40


@pytest.mark.parametrize("ends", ["after the bulk", "after the rebuild"])
async def test_a_transaction_left_open_changes_nothing_of_the_rebuild(
    start_engine: StartEngine,
    store: EventStore,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    ends: str,
) -> None:
    # A write transaction open (in any database of the cluster: the read horizon is the
    # cluster's) holds every later event back from ordered readers. The bulk still folds what
    # its snapshot sees; the catch-up (which reads those events once the transaction ends) and
    # the swap (under its lock, reading past the horizon) skip what that snapshot saw. Each
    # event is folded once, and none is left for the swap.
    holder = await asyncpg.connect(database_url)
    engine = await start_engine(backup_flow(), pausing_flow())
    bulk = rebuild_module._bulk

    async def bulk_then_end(*args: Any) -> Any:
        done = await bulk(*args)
        if ends == "after the bulk":
            await holder.execute("COMMIT")
        return done

    monkeypatch.setattr(rebuild_module, "_bulk", bulk_then_end)
    try:
        await holder.execute("BEGIN")
        await holder.fetchval("SELECT pg_current_xact_id()")
        await make_flows(engine, 20)
        await asyncio.sleep(1)  # let the reactor finish what it can
        before = await snapshot(engine.pool)
        events = await engine.pool.fetchval("SELECT count(*) FROM events")

        report = await rebuild(store, PROJECTOR, progress=False)

        assert report.caught_up_events == 0
        assert report.events == events
        assert report.flows == 20
        assert await snapshot(engine.pool) == before
    finally:
        await holder.close()
    checked = await verify(engine.service.store, PROJECTOR, progress=False)
    assert checked.ok, checked.differences


@pytest.mark.parametrize("jobs", [1, 2])
async def test_rebuild_under_concurrent_load_loses_nothing(
    start_engine: StartEngine, store: EventStore, database_url: str, jobs: int
) -> None:
    engine = await start_engine(backup_flow())
    await make_flows(engine, 100)
    stop = asyncio.Event()

    async def keep_writing() -> int:
        written = 0
        while not stop.is_set():
            await make_flows(engine, 5)
            written += 5
        return written

    writers = [asyncio.create_task(keep_writing()) for _ in range(3)]
    await asyncio.sleep(0.2)
    report = await rebuild(store, PROJECTOR, progress=False, jobs=jobs, url=database_url)
    await asyncio.sleep(0.3)  # writes go on after the swap, into the new tables
    stop.set()
    written = sum(await asyncio.gather(*writers))
    await asyncio.sleep(2)  # the reactor settles the flows it started

    assert report.caught_up_events > 0 or report.flows > 100
    total = await engine.pool.fetchval("SELECT count(*) FROM workflows")
    assert total == 100 + written
    checked = await verify(engine.service.store, PROJECTOR, progress=False)
    assert checked.ok, checked.differences[:20]


async def test_verify_reports_a_tampered_row_and_the_cli_exits_1(
    start_engine: StartEngine, store: EventStore, database_url: str
) -> None:
    engine = await start_engine(backup_flow(), run_reactor=False)
    ids = await make_flows(engine, 6)
    await engine.pool.execute("UPDATE workflows SET status = 'Finished' WHERE id = $1", ids[0])
    await engine.pool.execute("DELETE FROM workflow_nodes WHERE flow_id = $1", ids[1])
    await engine.pool.execute(
        "UPDATE workflow_counts SET count = count + 5 WHERE status = 'Stopped'"
    )

    checked = await verify(engine.service.store, PROJECTOR, progress=False)

    assert not checked.ok
    text = "\n".join(checked.differences)
    assert f"workflow {ids[0]}: status is 'Finished' in the table, 'Stopped' in the log" in text
    assert "workflow_counts" in text
    result = await asyncio.to_thread(run_cli, "verify", database_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"workflow {ids[0]}: status" in result.stdout
    # Rebuild repairs it.
    await rebuild(store, PROJECTOR, progress=False)
    assert (await verify(engine.service.store, PROJECTOR, progress=False)).ok


async def test_verify_reports_a_stream_out_of_order_in_the_log(
    start_engine: StartEngine, store: EventStore
) -> None:
    """What appending to a log restored with ids ahead of the server's counter leaves: a
    version that sorts after the next one. Made here by moving a version 1 ahead (only a
    superuser, with the log's triggers off, can)."""
    engine = await start_engine(backup_flow(), run_reactor=False)
    (flow_id,) = await make_flows(engine, 1)
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete")
        await conn.execute(
            "UPDATE events SET transaction_id = (pg_snapshot_xmax(pg_current_snapshot())"
            "::text::bigint + 1000)::text::xid8 WHERE stream_id LIKE '%' || $1 AND version = 1",
            flow_id,
        )
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete")

    checked = await verify(store, PROJECTOR, progress=False)

    (order,) = [d for d in checked.differences if "in the log's order" in d]
    assert flow_id in order
    assert "version 2 sorts before version 1" in order


def run_cli(command: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return run_flowlog(
        command, "--no-progress", env=cli_env(DATABASE_URL=database_url, **QUIET), timeout=60
    )


@pytest.mark.parametrize("command", ["rebuild", "verify"])
def test_the_cli_commands_run_on_an_empty_log(command: str, database_url: str) -> None:
    result = run_cli(command, database_url)
    assert result.returncode == 0, result.stderr
    assert "0 flows" in result.stdout


def test_the_cli_rebuilds_in_jobs_and_refuses_a_number_of_jobs_out_of_range(
    database_url: str,
) -> None:
    async def flows() -> None:
        async with Engine(database_url, Registry([backup_flow()]), run_reactor=False) as engine:
            await make_flows(engine, 30)

    asyncio.run(flows())

    rebuilt = run_flowlog("rebuild", "--jobs", "2", "--no-progress",
                          env=cli_env(DATABASE_URL=database_url, **QUIET), timeout=120)  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith("rebuilt 30 flows from ")
    assert run_cli("verify", database_url).returncode == 0
    for jobs in ("0", "65", "two"):
        refused = run_flowlog("rebuild", "--jobs", jobs, env=cli_env(**QUIET), timeout=60)
        assert refused.returncode == 2
        assert "--jobs: must be a number of processes from 1 to 64" in refused.stderr
