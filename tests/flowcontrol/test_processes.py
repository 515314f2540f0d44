"""Concurrency limits across three reactor processes and ``kill -9``: counted by the
executors themselves, never more flows of a cluster at once than the definition allows, nor
more runs of a node than the node allows; every flow finishes."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest

from flowlog.bench.limits import most_at_once
from flowlog.engine import Engine
from tests.processes import Workers, kill_a_worker_after, others, wait_finished

pytestmark = pytest.mark.slow

CLUSTERS = 4
FLOWS = 40


def spans(runs_dir: Path, killed_at: float) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Each run's (begin, end) by (node key, cluster); a run of the killed worker ends when it
    was killed."""
    begun: dict[tuple[str, str, str], float] = {}
    found: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for path in runs_dir.glob("spans-*.txt"):
        for line in path.read_text().splitlines():
            what, key, cluster, flow_id, at = line.split()
            if what == "begin":
                begun[(key, cluster, flow_id)] = float(at)
            else:
                found[(key, cluster)].append((begun.pop((key, cluster, flow_id)), float(at)))
    for (key, cluster, _), began in begun.items():
        found[(key, cluster)].append((began, killed_at))
    return found


async def test_limits_hold_across_processes_and_a_kill(
    database_url: str, runs_dir: Path, workers_factory: list[Workers], api: Engine
) -> None:
    workers = Workers(database_url, runs_dir, sleep_ms="30-80")
    workers_factory.append(workers)
    workers.start(3)
    for n in range(FLOWS):
        await api.service.create(f"biz-{n}", "test", "limited", start=True,
                                 context={"clusterId": f"c-{n % CLUSTERS}"})  # fmt: skip
    victim = await kill_a_worker_after(api.pool, workers, count=8)
    killed_at = time.time()
    await wait_finished(api.pool, FLOWS, within=180)
    assert others(workers.stop_all(), victim) == [0, 0]
    found = spans(runs_dir, killed_at)
    by_cluster: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (key, cluster), runs in found.items():
        by_cluster[cluster] += runs
        if key == "apply":
            assert most_at_once(runs) <= 1, f"apply ran at once for {cluster}: {runs}"
    peaks = {cluster: most_at_once(runs) for cluster, runs in by_cluster.items()}
    assert max(peaks.values()) <= 2, peaks
    assert max(peaks.values()) == 2, f"the limit was never reached: {peaks}"
    left = await api.pool.fetchval("SELECT count(*) FROM flow_slots")
    assert left == 0
