"""``flowlog bench tasks`` at a tiny size: its counts are those of the log it leaves behind (every
flow finished, each task of the queue's flows completed once by one of the worker processes,
the baseline's run by the server), and its ratios are computed from its own figures. What the
figures say about speed is the benchmark's business, not a test's."""

from __future__ import annotations

import statistics

import asyncpg
import orjson
import pytest

from flowlog.bench import task_latency, tasks
from flowlog.bench.size import Size

FLOWS, ROUNDS, SAMPLES = 8, 2, 3
RENDERED = """
SELECT w.name, e.metadata ->> 'actor' AS actor
FROM workflows w
JOIN events e ON e.stream_id = 'flow-' || w.id AND e.type = 'NodeSucceeded'
JOIN workflow_nodes n ON n.id = e.data ->> 'node_id'
WHERE n.name = 'render'
"""
FLOWS_BY_NAME = """
SELECT name, count(*) AS made, count(*) FILTER (WHERE status = 'Finished') AS finished
FROM workflows GROUP BY name
"""


@pytest.mark.slow
async def test_the_counts_are_the_logs_and_the_ratios_the_figures(
    database_url: str, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = await tasks.measure(database_url, FLOWS, rounds=ROUNDS, samples=SAMPLES)

    each = FLOWS + ROUNDS * FLOWS  # the warm-up's, then the rounds'
    by_name = {r["name"]: (r["made"], r["finished"]) for r in await pool.fetch(FLOWS_BY_NAME)}
    assert by_name == {
        tasks.IN_PROCESS: (each, each),
        tasks.TASKS: (each, each),
        task_latency.FLOW_NAME: (SAMPLES, SAMPLES),
    }
    made = 2 * each + SAMPLES
    assert (figures["flows_created"], figures["flows_in_log"], figures["flows_finished"]) == (
        made, made, made,
    )  # fmt: skip

    # Every render of the queue's flows was a worker process's (one of this run's), once; the
    # baseline's were the server's own.
    actors: dict[str, list[str]] = {}
    for row in await pool.fetch(RENDERED):
        actors.setdefault(row["name"], []).append(row["actor"])
    remote = actors[tasks.TASKS]
    assert len(remote) == each
    assert all("worker:bench-" in actor for actor in remote), remote
    assert not any("worker:" in actor for actor in actors[tasks.IN_PROCESS])
    assert all(f"worker:{task_latency.WORKER}" in a for a in actors[task_latency.FLOW_NAME])
    assert figures["tasks_expected"] == figures["tasks_completed"] == each
    assert figures["worker_failures"] == 0
    assert figures["worker_processes_reported"] == tasks.WORKERS * (ROUNDS + 1)
    assert figures["worker_polls"] > figures["worker_empty_polls"] >= 0
    assert 1 <= figures["tasks_per_poll"] <= tasks.POLL_MAX

    # The rates and ratios are the seconds' (rounded to the millisecond: compared loosely).
    local, remote_s = figures["in_process_seconds_each"], figures["tasks_seconds_each"]
    assert len(local) == len(remote_s) == ROUNDS
    assert figures["in_process_flows_per_s"] == pytest.approx(
        FLOWS / statistics.median(local), rel=0.05
    )
    assert figures["tasks_per_s"] == pytest.approx(FLOWS / statistics.median(remote_s), rel=0.05)
    ratio = statistics.median(i / t for i, t in zip(local, remote_s, strict=True))
    assert figures["ratio_tasks_vs_in_process"] == pytest.approx(ratio, rel=0.05)

    assert figures["latency_samples"] == SAMPLES
    for name in ("empty_poll", "offer_to_task", "create_to_task"):
        assert 0 < figures[f"{name}_p50_ms"] <= figures[f"{name}_p99_ms"]
    # The create was sent before its append began, sample by sample: so are their quantiles.
    assert figures["create_to_task_p50_ms"] >= figures["offer_to_task_p50_ms"]
    assert figures["ratio_latency_vs_empty_poll"] == pytest.approx(
        figures["offer_to_task_p50_ms"] / figures["empty_poll_p50_ms"], rel=0.01
    )

    tasks.report({"bench": "tasks", "size": "smoke", **figures}, Size.SMOKE).print(as_json=True)
    out = capsys.readouterr().out
    assert "one `flowlog serve`" in out
    printed = orjson.loads(out.strip().splitlines()[-1])
    assert printed["ratio_tasks_vs_in_process"] == figures["ratio_tasks_vs_in_process"]
    assert {k for k in printed if k.startswith("ratio_")} == {
        "ratio_tasks_vs_in_process", "ratio_latency_vs_empty_poll",
    }  # fmt: skip
