"""``flowlog bench limits``: a concurrency limit across worker processes, what it holds and
what it costs.

The same flows (2 ``sleep`` nodes of 20 ms, registered over REST, a context key ``k`` among
50 values; made first, then started key after key, so that each key's flows come as a burst)
are run by 3 ``flowlog worker`` processes on a scratch database: once of a
definition without limits (the baseline), once of a definition that lets at most 5 flows per
value of ``k`` run at once. Measured: flows/s from the first create to the last flow Finished,
``ratio_flows_limited_vs_unlimited`` (the limit holds each burst of 20 to 5 at once: it is
meant to slow them), the same with a limit no burst reaches (what asking the database costs,
``ratio_flows_limit_unreached_vs_unlimited``), and the most flows of one value that ran at
once, from the log's own times (each flow from its first node's start to its end): at most 5.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from typing import Any

import asyncpg
from tqdm import tqdm

from flowlog.bench.harness import Report, scratch_database, worker_processes
from flowlog.bench.size import Size
from flowlog.builtins import definition_from_spec
from flowlog.engine import Engine
from flowlog.workflow.definition import Registry

KEYS = 50
LIMIT = 5
WORKERS = 3
QUICK_FLOWS, FULL_FLOWS, SMOKE_FLOWS = 1000, 4000, 60
_DEFINITIONS_SEEN = 2.5
"""Workers load definitions registered over REST every 2 s."""

SPANS = """
SELECT w.id, w.context ->> 'k' AS k,
       min(e.recorded_at) FILTER (WHERE e.type = 'NodeStarted') AS began,
       max(e.recorded_at) FILTER (WHERE e.type = 'FlowFinished') AS ended
FROM workflows w JOIN events e ON e.stream_id = 'flow-' || w.id
WHERE w.name = $1
GROUP BY w.id, w.context ->> 'k'
"""
FINISHED = "SELECT count(*) FROM workflows WHERE name = $1 AND status = 'Finished'"


def _spec(name: str, limit: int | None) -> dict[str, Any]:
    sleep = {"type": "sleep", "seconds": 0.02}
    spec: dict[str, Any] = {
        "name": name,
        "nodes": {
            "start": {"name": "one", "executor": sleep, "success": "two"},
            "two": {"name": "two", "executor": sleep},
        },
    }
    if limit is not None:
        spec["concurrency"] = {"key": "context.k", "limit": limit}
    return spec


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans that overlap at one instant (an end before a begin at the same time)."""
    edges = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    figures: dict[str, Any] = {"bench": "limits", "size": size.value, "flows": flows,
                               "keys": KEYS, "limit": LIMIT, "workers": WORKERS,
                               "cores": os.cpu_count()}  # fmt: skip
    unlimited = await _run_one(server_url, flows, None, progress)
    limited = await _run_one(server_url, flows, LIMIT, progress)
    # A limit no burst reaches: what asking the database costs, without any flow held back.
    unreached = await _run_one(server_url, flows, flows, progress)
    figures["flows_per_s_unlimited"] = unlimited["flows_per_s"]
    figures["flows_per_s_limited"] = limited["flows_per_s"]
    figures["most_at_once_per_key_unlimited"] = unlimited["most_at_once"]
    figures["most_at_once_per_key_limited"] = limited["most_at_once"]
    figures["ratio_flows_limited_vs_unlimited"] = round(
        limited["flows_per_s"] / unlimited["flows_per_s"], 3
    )
    figures["flows_per_s_limit_unreached"] = unreached["flows_per_s"]
    figures["most_at_once_per_key_limit_unreached"] = unreached["most_at_once"]
    figures["ratio_flows_limit_unreached_vs_unlimited"] = round(
        unreached["flows_per_s"] / unlimited["flows_per_s"], 3
    )
    rows = [
        ["no limit", unlimited["flows_per_s"], unlimited["most_at_once"], 1.0],
        [f"at most {LIMIT} per key", limited["flows_per_s"], limited["most_at_once"],
         figures["ratio_flows_limited_vs_unlimited"]],
        [f"at most {flows} per key (never reached)", unreached["flows_per_s"],
         unreached["most_at_once"], figures["ratio_flows_limit_unreached_vs_unlimited"]],
    ]  # fmt: skip
    notes = [
        f"{flows} flows of 2 sleep nodes (20 ms) over {KEYS} key values, started key after "
        f"key (a burst per key), run by {WORKERS} "
        f"worker processes on a scratch database; {os.cpu_count()} cores shared by the "
        "workers, PostgreSQL and this process. 'most at once' is read from the log: each "
        "flow from its first node's start to its end, the most of one key value at one time."
    ]
    header = ["definition", "flows/s", "most at once per key", "vs no limit"]
    return Report("limits", header, rows, figures, notes)


async def _run_one(
    server_url: str, flows: int, limit: int | None, progress: bool
) -> dict[str, Any]:
    name = "bench-unlimited" if limit is None else f"bench-limit-{limit}"
    definition = definition_from_spec(_spec(name, limit))
    async with (
        scratch_database(server_url) as url,
        Engine(url, Registry(), run_reactor=False) as engine,
        worker_processes(url, WORKERS),
    ):
        await engine.service.register_workflow(definition)
        await asyncio.sleep(_DEFINITIONS_SEEN)
        # Made first, then started key by key: the flows of a key are due together, as a
        # burst for one cluster is, so that the limit has something to hold back.
        made = [
            (await engine.service.create(f"b{n}", "bench", name,
                                         context={"k": f"k{n * KEYS // flows}"})).flow_id
            for n in range(flows)
        ]  # fmt: skip
        start = time.perf_counter()
        for chunk in range(0, flows, 50):
            await asyncio.gather(*(engine.service.start(f) for f in made[chunk : chunk + 50]))
        await _until_finished(engine.pool, name, flows, progress)
        seconds = time.perf_counter() - start
        spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for row in await engine.pool.fetch(SPANS, name):
            spans[row["k"]].append((row["began"].timestamp(), row["ended"].timestamp()))
    return {
        "flows_per_s": round(flows / seconds, 1),
        "most_at_once": max(most_at_once(s) for s in spans.values()),
    }


async def _until_finished(pool: asyncpg.Pool, name: str, flows: int, progress: bool) -> None:
    with tqdm(total=flows, desc=name, unit="flow", disable=not progress) as bar:
        while (done := await pool.fetchval(FINISHED, name)) < flows:
            bar.update(done - bar.n)
            await asyncio.sleep(0.1)
        bar.update(flows - bar.n)
