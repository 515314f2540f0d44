"""Several reactor processes on one database: exactly-once without crashes, recovery after
``kill -9`` of a worker, and after every database connection of the service is cut."""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict
from pathlib import Path

import pytest

from flowlog.engine import Engine
from flowlog.eventstore import connect
from flowlog.workflow.definition import Registry
from flowlog.workflow.errors import Code
from flowlog.workflow.reactor_settings import ReactorSettings
from tests.processes import (
    SUBMITTED,
    Workers,
    create_flows,
    histories,
    kill_a_worker_after,
    node_runs,
    others,
    pollers,
    wait_finished,
)
from tests.workflow.helpers import assert_clean_history
from tests.workflow.procdefs import DEFINITIONS

pytestmark = pytest.mark.slow


async def test_three_workers_share_500_flows_and_run_every_node_exactly_once(
    database_url: str, runs_dir: Path, workers_factory: list[Workers], api: Engine
) -> None:
    # A long lease: on a loaded machine a heartbeat may come late, and then a node would run
    # again (at least once); this test is about the case where nothing goes wrong.
    workers = Workers(database_url, runs_dir, sleep_ms="0-5", lease_seconds=20)
    workers_factory.append(workers)
    workers.start(3)
    flow_ids = await create_flows(api, 500)

    await wait_finished(api.pool, 500, within=120)
    assert workers.stop_all() == [0, 0, 0]

    runs, pids = node_runs(runs_dir)
    assert set(runs) == {(f, k) for f in flow_ids for k in ("start", "two", "three")}
    assert set(runs.values()) == {1}  # nothing crashed: every node ran exactly once
    assert len(pids) >= 2  # the work was shared
    stored = await histories(api.pool)
    assert set(stored) == set(flow_ids)
    for history in stored.values():
        assert_clean_history(history)
        assert [t for t, _ in history].count("NodeSucceeded") == 3
    assert await api.pool.fetchval("SELECT count(*) FROM flow_work") == 0


async def test_a_worker_killed_with_sigkill_loses_no_flow_and_doubles_no_transition(
    database_url: str, runs_dir: Path, workers_factory: list[Workers], api: Engine
) -> None:
    workers = Workers(database_url, runs_dir, sleep_ms="20-60")
    workers_factory.append(workers)
    workers.start(3)
    flow_ids = await create_flows(api, 200)
    victim = await kill_a_worker_after(api.pool, workers)
    # The two others take over the victim's flows once its 2-second leases expire.
    await wait_finished(api.pool, 200, within=120)
    assert others(workers.stop_all(), victim) == [0, 0]

    stored = await histories(api.pool)
    assert set(stored) == set(flow_ids)
    interrupted: dict[str, set[str]] = defaultdict(set)
    for flow_id, history in stored.items():
        assert_clean_history(history)
        assert history[-1][0] == "FlowFinished"
        starts = {d["node_id"]: d["key"] for t, d in history if t == "NodeStarted"}
        for event_type, data in history:
            if event_type == "NodeFailed" and data["error_code"] == Code.NODE_INTERRUPTED:
                interrupted[flow_id].add(str(starts[data["node_id"]]))
    assert interrupted, "the kill interrupted no node: the test did not test anything"
    runs, _ = node_runs(runs_dir)
    for (flow_id, key), count in runs.items():
        # At least once: a node runs again only when its first run was interrupted.
        assert count == 1 or key in interrupted[flow_id], (flow_id, key, count)


async def test_flows_parked_in_a_worker_killed_with_sigkill_are_polled_on_by_another(
    database_url: str, runs_dir: Path, workers_factory: list[Workers], api: Engine
) -> None:
    """Polling nodes wait parked in the worker that leased them (polled from its memory).
    Killed, it takes them with it only until their leases lapse: another worker claims
    them, polls the same operations (no node runs again) and the flows finish."""
    workers = Workers(database_url, runs_dir, sleep_ms="0")
    workers.env["PROC_WAIT_S"] = "4"
    workers_factory.append(workers)
    workers.start(1)
    ids = [
        (await api.service.create(f"w-{n}", "test", "waiter", start=True)).flow_id
        for n in range(30)
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while await api.pool.fetchval(SUBMITTED) < 30:
        assert loop.time() < deadline, "the operations were never all submitted"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # parked, polled a few times by the first worker
    victim = workers.processes[0]
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    workers.start(1)

    await wait_finished(api.pool, 30, within=60)
    assert workers.stop_all()[1:] == [0]
    stored = await histories(api.pool)
    assert set(stored) == set(ids)
    for history in stored.values():
        assert_clean_history(history)
        assert [t for t, _ in history].count("NodeOperationSubmitted") == 1
    runs, _ = node_runs(runs_dir)
    assert all(count == 1 for count in runs.values()), runs
    assert pollers(runs_dir) == {f"polls-{victim.pid}.txt", f"polls-{workers.processes[1].pid}.txt"}


async def test_the_service_recovers_when_all_its_connections_are_cut(
    database_url: str, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("PROC_SLEEP_MS", "10-30")
    settings = ReactorSettings(concurrency=16, lease_seconds=3, heartbeat_seconds=0.2)
    admin = await connect(database_url)
    try:
        async with Engine(database_url, Registry(DEFINITIONS), reactor=settings) as engine:
            flow_ids = await create_flows(engine, 150)
            for _ in range(2):
                await asyncio.sleep(0.5)
                cut = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                assert cut >= 2  # the pool and the LISTEN connection at least
            await wait_finished(admin, 150, within=120)
            await asyncio.sleep(0.5)
            assert engine.listener.connected
            stored = await histories(admin)
    finally:
        await admin.close()

    assert set(stored) == set(flow_ids)
    for history in stored.values():
        assert_clean_history(history)
        assert history[-1][0] == "FlowFinished"


async def test_a_node_that_kills_its_worker_every_time_gives_up_after_its_cap(
    database_url: str, runs_dir: Path, workers_factory: list[Workers], api: Engine
) -> None:
    """Each run of the node SIGKILLs its worker; a new worker takes the flow once the lease
    expires and records the interruption. After max_interruptions (2) reruns the node fails
    for good (40110) and the flow takes its fail path, instead of looping forever."""
    workers = Workers(database_url, runs_dir, sleep_ms="0", lease_seconds=1)
    workers_factory.append(workers)
    flow_id = (await api.service.create("biz", "test", "crashy", start=True)).flow_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while (status := await api.pool.fetchval(
        "SELECT status FROM workflows WHERE id = $1", flow_id
    )) not in {"Error", "Finished"}:  # fmt: skip
        assert loop.time() < deadline, f"the flow stayed {status}"
        if all(process.poll() is not None for process in workers.processes):
            workers.start(1)  # the last worker died running the node: start another
        await asyncio.sleep(0.1)
    assert workers.stop_all()[-1] == 0

    history = (await histories(api.pool))[flow_id]
    assert_clean_history(history)
    failures = [d for t, d in history if t == "NodeFailed"]
    assert [f["error_code"] for f in failures] == [Code.NODE_INTERRUPTED] * 3
    assert [f["will_retry"] for f in failures] == [True, True, False]
    assert failures[-1]["next"] == "cleanup"
    assert history[-1][0] == "FlowFailed"
    runs, _ = node_runs(runs_dir)
    assert runs[(flow_id, "start")] == 3  # the first run and two reruns, then no more
    assert runs[(flow_id, "cleanup")] == 1
