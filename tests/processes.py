"""Worker processes on a test database, and what the process tests read back: shared by
tests/workflow/test_processes.py and tests/archive/test_processes.py (the fixtures are in
tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg

from flowlog.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
HISTORIES = """
SELECT stream_id,
       array_agg(type ORDER BY version) AS types,
       array_agg(data ORDER BY version) AS data
FROM events WHERE stream_id LIKE 'flow-%' GROUP BY stream_id
"""
FINISHED = "SELECT count(*) FROM events WHERE type = 'FlowFinished'"
SUBMITTED = "SELECT count(*) FROM events WHERE type = 'NodeOperationSubmitted'"
WORKER_COMMAND = [
    sys.executable, "-m", "flowlog.cli", "worker",
    "--concurrency", "8", "--definitions", "tests.workflow.procdefs",
]  # fmt: skip


class Workers:
    """``flowlog worker`` processes on the test database."""

    def __init__(
        self, database_url: str, runs_dir: Path, sleep_ms: str, lease_seconds: int = 2
    ) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "RUNS_DIR": str(runs_dir),
            "PROC_SLEEP_MS": sleep_ms,
            "FLOWLOG_LEASE_SECONDS": str(lease_seconds),
            "FLOWLOG_LOG_LEVEL": "WARNING",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        # A file, not a pipe: a worker must never block on a full pipe nobody reads.
        self.log = (runs_dir.parent / "workers.log").open("ab")

    def start(self, count: int) -> None:
        for _ in range(count):
            self.processes.append(
                subprocess.Popen(
                    WORKER_COMMAND,
                    cwd=ROOT,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=self.log,
                )
            )

    def stop_all(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(30))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        self.log.close()


def node_runs(runs_dir: Path) -> tuple[Counter[tuple[str, str]], set[str]]:
    runs: Counter[tuple[str, str]] = Counter()
    pids = set()
    for path in runs_dir.glob("runs-*.txt"):
        for line in path.read_text().splitlines():
            flow_id, key, _attempt, pid = line.split()
            runs[(flow_id, key)] += 1
            pids.add(pid)
    return runs, pids


def pollers(runs_dir: Path) -> set[str]:
    """The files of the processes that polled operations (polls-<pid>.txt)."""
    return {path.name for path in runs_dir.glob("polls-*.txt")}


async def create_flows(engine: Engine, count: int) -> list[str]:
    async def create(n: int) -> str:
        return (await engine.service.create(f"biz-{n}", "test", "proc", start=True)).flow_id

    ids: list[str] = []
    for chunk in range(0, count, 50):
        ids += await asyncio.gather(*(create(n) for n in range(chunk, min(count, chunk + 50))))
    return ids


async def wait_finished(pool: asyncpg.Pool | asyncpg.Connection, count: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (done := await pool.fetchval(FINISHED)) < count:
        assert loop.time() < deadline, f"only {done} of {count} flows finished"
        await asyncio.sleep(0.2)


async def histories(
    pool: asyncpg.Pool | asyncpg.Connection,
) -> dict[str, list[tuple[str, dict[str, object]]]]:
    rows = await pool.fetch(HISTORIES)
    return {
        row["stream_id"].removeprefix("flow-"): list(zip(row["types"], row["data"], strict=True))
        for row in rows
    }


_RUNNING_NODES_OWNERS = """
SELECT DISTINCT w.lease_owner FROM flow_work AS w
WHERE w.lease_expires_at > now()
  AND (SELECT e.type FROM events AS e WHERE e.stream_id = 'flow-' || w.flow_id
       ORDER BY e.version DESC LIMIT 1) = 'NodeStarted'
"""


async def kill_a_worker_after(
    pool: asyncpg.Pool, workers: Workers, count: int = 40, progress: str = FINISHED
) -> int:
    """Once ``progress`` (a count query) reaches ``count``, SIGKILLs a worker while it holds a
    flow whose node has started and not ended (a kill of a worker holding only flows between
    two nodes would interrupt nothing; waiting for one chosen in advance failed on a loaded
    machine, where the others had taken every flow that was due). Returns which worker (its
    index in ``workers.processes``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while await pool.fetchval(progress) < count:
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    by_pid = {process.pid: process for process in workers.processes}
    victim = None
    while victim is None:
        assert loop.time() < deadline, "no worker ran a node"
        owners = [row[0] for row in await pool.fetch(_RUNNING_NODES_OWNERS)]
        # A reactor's lease owner is host:pid:suffix (flowlog.workflow.reactor.worker_name).
        pids = [int(owner.split(":")[1]) for owner in owners if owner.count(":") == 2]
        victim = next((by_pid[pid] for pid in pids if pid in by_pid), None)
        if victim is None:
            await asyncio.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    return workers.processes.index(victim)


def others(codes: list[int], victim: int) -> list[int]:
    """The exit statuses of the workers that were not killed."""
    return [code for n, code in enumerate(codes) if n != victim]
