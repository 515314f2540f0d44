"""Schedules across three ``flowlog worker`` processes, with kill -9: exactly one flow per
fire time, and a fire whose scheduler died before making its flow gets its flow anyway."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from flowlog.engine import Engine
from flowlog.faults import VARIABLE
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.definition import Registry
from tests.workflow.procdefs import DEFINITIONS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [
    sys.executable,
    "-m",
    "flowlog.cli",
    "worker",
    "--definitions",
    "tests.workflow.procdefs",
]
SCHEDULES = ("a", "b", "c")
FIRES = """
SELECT e.stream_id, e.data ->> 'flow_id' AS flow_id,
       (e.data ->> 'fire_time')::timestamptz AS fire_time, e.recorded_at AS fired_at
FROM events AS e WHERE e.type = 'ScheduleFired' AND e.stream_id LIKE 'schedule-%'
ORDER BY e.stream_id, e.version
"""
SKIPS = """
SELECT stream_id, (data ->> 'first')::timestamptz AS first, (data ->> 'last')::timestamptz AS last,
       (data ->> 'count')::int AS count
FROM events WHERE type = 'ScheduleSkipped'
"""
CREATED = """
SELECT substr(stream_id, 6) AS flow_id, recorded_at, data -> 'context' ->> 'scheduleId' AS sid
FROM events WHERE type = 'FlowCreated'
"""


class Workers:
    def __init__(self, database_url: str, log: Path) -> None:
        self.env = {**os.environ, "DATABASE_URL": database_url, "FLOWLOG_LOG_LEVEL": "WARNING",
                    "RUNS_DIR": str(log.parent), "PROC_SLEEP_MS": "0"}  # fmt: skip
        self.log = log.open("ab")
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            COMMAND, cwd=ROOT, env={**self.env, **env}, stdout=subprocess.DEVNULL, stderr=self.log
        )
        self.processes.append(process)
        return process

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Workers]:
    made = Workers(database_url, tmp_path / "workers.log")
    yield made
    made.cleanup()


async def died(process: subprocess.Popen[bytes], within: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while process.poll() is None:
        assert loop.time() < deadline, "the process did not die"
        await asyncio.sleep(0.05)
    return process.returncode


async def test_three_workers_and_kill_9_fire_each_time_once(
    database_url: str, workers: Workers
) -> None:
    async with Engine(database_url, Registry(DEFINITIONS), run_reactor=False) as api:
        for schedule_id in SCHEDULES:
            spec = ScheduleSpec(flowName="proc", intervalSeconds=1, overlap="allow")
            await api.schedules.create(schedule_id, spec)
    # One worker dies right after it records a fire, before it makes the fire's flow.
    doomed = workers.start(**{VARIABLE: "schedule-fired"})
    second, _ = workers.start(), workers.start()
    assert await died(doomed, 20) == -signal.SIGKILL
    await asyncio.sleep(3)
    second.send_signal(signal.SIGKILL)  # and another, whenever it is
    assert await died(second, 10) == -signal.SIGKILL
    workers.start()
    await asyncio.sleep(14)  # past the lease and the settle time of the doomed worker's fire
    workers.cleanup()

    conn = await asyncpg.connect(database_url)
    try:
        fires, skips, created = [await conn.fetch(q) for q in (FIRES, SKIPS, CREATED)]
    finally:
        await conn.close()
    flows = {row["flow_id"]: row for row in created}
    by_schedule: dict[str, list[asyncpg.Record]] = {}
    for fire in fires:
        by_schedule.setdefault(fire["stream_id"].removeprefix("schedule-"), []).append(fire)
    recovered = 0
    for schedule_id in SCHEDULES:
        mine = by_schedule[schedule_id]
        assert len(mine) >= 8, mine
        times = [f["fire_time"] for f in mine]
        assert times == sorted(set(times)), "a fire time fired twice, or out of order"
        # Every fire made its flow, once (flow ids derive from the fire).
        for fire in mine:
            flow = flows[fire["flow_id"]]
            assert flow["sid"] == schedule_id
            if flow["recorded_at"] - fire["fired_at"] > timedelta(seconds=5):
                recovered += 1
        assert sum(1 for f in created if f["sid"] == schedule_id) == len(mine)
        # No fire time was lost or settled twice: the fired times and the skipped ranges
        # (each of whole seconds) are disjoint and cover every second from first to last.
        settled = [(t, t) for t in times] + [
            (s["first"], s["last"]) for s in skips if s["stream_id"] == f"schedule-{schedule_id}"
        ]
        for s in skips:
            if s["stream_id"] == f"schedule-{schedule_id}":
                assert s["count"] == int((s["last"] - s["first"]).total_seconds()) + 1, s
        settled.sort()
        for (_, end), (start, _) in itertools.pairwise(settled):
            assert start - end == timedelta(seconds=1), settled
    assert recovered >= 1, "no fire was left without its flow by the kill: nothing was tested"
