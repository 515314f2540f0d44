"""Archival across processes: ``flowlog archive`` killed at every step and run again, and
workers killed with SIGKILL while their periodic archive runs remove finished flows. No flow
is lost and none is doubled: each is in the hot log, or whole in a recorded archive."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import pytest

from flowlog.archive.files import read_archive
from flowlog.engine import Engine
from tests.archive.test_archival import verified
from tests.helpers import cli_env, run_flowlog
from tests.processes import Workers, create_flows, histories, kill_a_worker_after, others
from tests.workflow.helpers import assert_clean_history

pytestmark = pytest.mark.slow

ENDED_OR_ARCHIVED = (
    "SELECT (SELECT count(*) FROM events WHERE type = 'FlowFinished') "
    "+ (SELECT count(*) FROM archived_flows)"
)
ARCHIVED = """
SELECT f.flow_id, a.file, a.sha256 FROM archived_flows f JOIN archives a ON a.id = f.archive_id
"""


async def accounted(pool: asyncpg.Pool) -> dict[str, list[tuple[str, dict[str, object]]]]:
    """Every flow's whole history, from the hot log or from its archive (never from both)."""
    found = await histories(pool)
    files: dict[tuple[str, str], list[str]] = {}
    for row in await pool.fetch(ARCHIVED):
        files.setdefault((row["file"], row["sha256"]), []).append(row["flow_id"])
    for (file, sha256), flow_ids in files.items():
        _, lines = await asyncio.to_thread(read_archive, Path(file), sha256)
        for flow_id in flow_ids:
            assert flow_id not in found, f"{flow_id} is both in the hot log and archived"
            found[flow_id] = [
                (line["type"], line["data"]) for line in lines
                if line["stream_id"] == f"flow-{flow_id}"
            ]  # fmt: skip
    return found


@pytest.mark.parametrize(
    "failpoint", ["archive-planned", "archive-sealed", "archive-written", "archive-removing"]
)
async def test_flowlog_archive_killed_at_any_step_finishes_on_the_next_run(
    failpoint: str, api: Engine, database_url: str, tmp_path: Path
) -> None:
    flow_ids: list[str] = []
    env = cli_env(
        DATABASE_URL=database_url, FLOWLOG_RETENTION="0s", FLOWLOG_ARCHIVE_DIR=str(tmp_path),
        FLOWLOG_LOG_LEVEL="WARNING",
    )  # fmt: skip
    for n in range(30):
        state = await api.service.create(f"b{n}", "t", "proc")
        await api.service.cancel(state.flow_id, "not needed")
        flow_ids.append(state.flow_id)
    migrated = await asyncio.to_thread(run_flowlog, "migrate", env=env)  # sets the retention
    assert migrated.returncode == 0, migrated.stderr
    killed = await asyncio.to_thread(
        run_flowlog, "archive", "--no-progress", "--limit", "20",
        env={**env, "FLOWLOG_FAILPOINT": failpoint},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = await asyncio.to_thread(run_flowlog, "archive", "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    assert "archived" in done.stdout
    stored = await accounted(api.pool)
    assert set(stored) == set(flow_ids)
    for history in stored.values():
        assert history[-2][0] == "FlowCanceled"
        assert history[-1][0] == "FlowArchived"
    assert await api.pool.fetchval("SELECT count(*) FROM archives WHERE status <> 'Removed'") == 0
    assert await api.pool.fetchval("SELECT count(*) FROM workflows") == 0
    await verified(database_url)

    shown = await asyncio.to_thread(run_flowlog, "history", flow_ids[0], env=env)
    assert shown.returncode == 0, shown.stderr
    assert "archived (archive" in shown.stdout
    assert "was archived" in shown.stderr
    replayed = await asyncio.to_thread(run_flowlog, "replay", flow_ids[0], "--json", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert '"status":"Canceled"' in replayed.stdout


async def test_workers_killed_while_archiving_lose_no_flow(
    database_url: str, runs_dir: Path, workers_factory: list[Workers], api: Engine,
    tmp_path: Path,
) -> None:  # fmt: skip
    archive_dir = tmp_path / "archive"
    workers = Workers(database_url, runs_dir, sleep_ms="20-60")
    workers.env |= {
        "FLOWLOG_RETENTION": "0s", "FLOWLOG_ARCHIVE_DIR": str(archive_dir),
        "FLOWLOG_ARCHIVE_INTERVAL": "1",
    }  # fmt: skip
    workers_factory.append(workers)
    workers.start(3)
    flow_ids = await create_flows(api, 200)
    victim = await kill_a_worker_after(api.pool, workers, progress=ENDED_OR_ARCHIVED)
    # Every flow finishes and is archived by the workers' periodic runs.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while await api.pool.fetchval("SELECT count(*) FROM archived_flows") < 200:
        assert loop.time() < deadline, "not every flow was archived"
        await asyncio.sleep(0.2)
    assert others(workers.stop_all(), victim) == [0, 0]
    stored = await accounted(api.pool)
    assert set(stored) == set(flow_ids)
    for history in stored.values():
        assert_clean_history(history)
        assert [t for t, _ in history][-2:] == ["FlowFinished", "FlowArchived"]
    await verified(database_url)


async def test_archive_and_restore_from_the_command_line(
    api: Engine, database_url: str, tmp_path: Path
) -> None:
    env = cli_env(
        DATABASE_URL=database_url, FLOWLOG_RETENTION="0s", FLOWLOG_ARCHIVE_DIR=str(tmp_path),
        FLOWLOG_RETENTION_DEFINITIONS="other=off",
    )  # fmt: skip
    flow_ids = []
    for n in range(3):
        state = await api.service.create(f"b{n}", "t", "proc")
        await api.service.cancel(state.flow_id, "not needed")
        flow_ids.append(state.flow_id)
    unset = await asyncio.to_thread(run_flowlog, "archive", "--dry-run", env=env)
    assert unset.returncode == 0, unset.stderr
    assert "retention is off in the database" in unset.stdout  # the environment's is a seed
    assert "the database's applies" in unset.stderr
    migrated = await asyncio.to_thread(run_flowlog, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "retention in the database: default 0s, other off" in migrated.stdout
    dry = await asyncio.to_thread(run_flowlog, "archive", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "retention: default 0s, other off" in dry.stdout
    assert "applies" not in dry.stderr
    assert "proc: 3" in dry.stdout
    assert await api.pool.fetchval("SELECT count(*) FROM workflows") == 3  # changed nothing
    done = await asyncio.to_thread(run_flowlog, "archive", "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    assert "archived 3 flows" in done.stdout
    (file,) = await asyncio.to_thread(lambda: list(tmp_path.glob("*.jsonl.gz")))
    restored = await asyncio.to_thread(run_flowlog, "import", str(file), env=env)
    assert restored.returncode == 0, restored.stderr
    assert "restored 3 flows" in restored.stdout
    assert await api.pool.fetchval("SELECT count(*) FROM workflows") == 3
    verified_ = await asyncio.to_thread(run_flowlog, "verify", "--no-progress", env=env)
    assert verified_.returncode == 0, verified_.stdout
    off_env = {**env, "FLOWLOG_RETENTION": "off", "FLOWLOG_RETENTION_DEFINITIONS": ""}
    assert (await asyncio.to_thread(run_flowlog, "migrate", env=off_env)).returncode == 0
    off = await asyncio.to_thread(run_flowlog, "archive", env=cli_env(DATABASE_URL=database_url))
    assert off.returncode == 0
    assert "retention is off in the database" in off.stdout
    bad = await asyncio.to_thread(run_flowlog, "migrate", env={**env, "FLOWLOG_RETENTION": "soon"})
    assert bad.returncode == 2
    assert "not a retention" in bad.stderr
