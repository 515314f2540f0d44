"""``flowlog bench schedules``: how late schedules fire, in one ``flowlog serve``.

S schedules (100; ``--quick`` 20) fire every I seconds (5 s) for a window of W seconds (60 s;
quick 15 s) twice: first *spread* (each with its own ``startAt``, so that their fires come one
at a time, evenly over the interval: the delay of a fire alone), then, those deleted, as many
*in a burst* (all at the same instants: an interval counts from the epoch, so every schedule
of an interval fires at once, as every nightly schedule does at midnight). Measured, in the
same run:

- the fire delay: from a fire's nominal time to its flow's ``FlowCreated`` (both on the
  database's clock: the fire time is the schedule's arithmetic, the creation the append's
  recorded time), p50 / p99 / max over every fire of each window;
- to the flow's first node (``NodeStarted``): the delay to the work actually starting;
- the baseline: the latency of creating and starting the same flow over the API
  (``POST /api/v1/workflow/``, 4 clients) on the same server just before, p50 / p99;
- the serve process's CPU share during the window, against the same process idle before;
- that every fire started exactly one flow (``ScheduleFired`` events = flows made), and
  ``flowlog verify`` (flows and schedules) finds no drift.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from flowlog.bench import schedule_flows
from flowlog.bench.harness import Report, percentile, process_cpu_seconds, scratch_database, served
from flowlog.bench.size import Size
from flowlog.eventstore import EventStore, create_pool
from flowlog.projections.verify import verify
from flowlog.schedules.rebuild import verify_schedules
from flowlog.workflow.projection import PROJECTOR

QUICK_SCHEDULES, FULL_SCHEDULES, SMOKE_SCHEDULES = 20, 100, 3
QUICK_WINDOW, FULL_WINDOW, SMOKE_WINDOW = 15.0, 60.0, 4.0
INTERVAL, SMOKE_INTERVAL = 5.0, 2.0
CREATES, SMOKE_CREATES = 200, 20
CLIENTS = 4

_DELAYS = """
SELECT extract(epoch FROM c.recorded_at - (f.data ->> 'fire_time')::timestamptz)::float8
         AS created,
       extract(epoch FROM s.recorded_at - (f.data ->> 'fire_time')::timestamptz)::float8
         AS started
FROM events AS f
JOIN events AS c ON c.stream_id = 'flow-' || (f.data ->> 'flow_id') AND c.version = 1
LEFT JOIN LATERAL (
    SELECT recorded_at FROM events
    WHERE stream_id = c.stream_id AND type = 'NodeStarted' ORDER BY version LIMIT 1
) AS s ON true
WHERE f.type = 'ScheduleFired' AND f.stream_id LIKE 'schedule-' || $1
  AND (f.data ->> 'fire_time')::timestamptz >= $2
"""
_COUNTS = """
SELECT (SELECT count(*) FROM events WHERE type = 'ScheduleFired') AS fired,
       (SELECT count(*) FROM workflows WHERE context ? 'scheduleId') AS flows
"""


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    count = size.pick(FULL_SCHEDULES, QUICK_SCHEDULES, SMOKE_SCHEDULES)
    window = size.pick(FULL_WINDOW, QUICK_WINDOW, SMOKE_WINDOW)
    interval = size.pick(INTERVAL, INTERVAL, SMOKE_INTERVAL)
    creates = size.pick(CREATES, CREATES, SMOKE_CREATES)
    figures: dict[str, Any] = {
        "bench": "schedules", "size": size.value, "schedules": count, "interval_s": interval,
        "window_s": window,
    }  # fmt: skip
    async with scratch_database(server_url) as url:
        async with (
            served(url, "--definitions", "flowlog.bench.schedule_flows") as (base, process),
            aiohttp.ClientSession(base) as http,
        ):
            create_ms = await _creates(http, creates)
            idle = process_cpu_seconds(process.pid)
            await asyncio.sleep(window / 4)
            idle_share = (process_cpu_seconds(process.pid) - idle) / (window / 4)
            spread_from, _ = await _fire(http, process.pid, "spread", count, interval,
                                         window / 2, progress, spread=True)  # fmt: skip
            for n in range(count):
                async with http.delete(f"/api/v1/workflow-schedules/spread-{n}") as answer:
                    await answer.read()
            burst_from, burst_cpu = await _fire(http, process.pid, "burst", count, interval,
                                                window / 2, progress, spread=False)  # fmt: skip
            firing_share = burst_cpu / (window / 2)
        pool = await create_pool(url, max_size=2)
        try:
            await asyncio.sleep(1)  # the last fires' flows, and their first nodes
            spread_rows = await pool.fetch(_DELAYS, "spread-%", _at(spread_from))
            rows = await pool.fetch(_DELAYS, "burst-%", _at(burst_from))
            counts = await pool.fetchrow(_COUNTS)
            checked = await verify(EventStore(pool), PROJECTOR, progress=False)
            schedules = await verify_schedules(pool)
        finally:
            await pool.close()
    assert counts is not None
    created = [row["created"] * 1000 for row in rows]
    started = [row["started"] * 1000 for row in rows if row["started"] is not None]
    alone = [row["created"] * 1000 for row in spread_rows]
    alone_started = [row["started"] * 1000 for row in spread_rows if row["started"] is not None]
    figures.update({
        "fires": len(alone),
        "fire_delay_p50_ms": round(percentile(alone, 0.5), 1),
        "fire_delay_p99_ms": round(percentile(alone, 0.99), 1),
        "fire_delay_max_ms": round(max(alone), 1),
        "first_node_p50_ms": round(percentile(alone_started, 0.5), 1),
        "first_node_p99_ms": round(percentile(alone_started, 0.99), 1),
        "burst_fires": len(created),
        "burst_fire_delay_p50_ms": round(percentile(created, 0.5), 1),
        "burst_fire_delay_p99_ms": round(percentile(created, 0.99), 1),
        "burst_fire_delay_max_ms": round(max(created), 1),
        "burst_first_node_p50_ms": round(percentile(started, 0.5), 1),
        "burst_first_node_p99_ms": round(percentile(started, 0.99), 1),
        "create_start_p50_ms": round(percentile(create_ms, 0.5), 1),
        "create_start_p99_ms": round(percentile(create_ms, 0.99), 1),
        "idle_cpu_share": round(idle_share, 4),
        "firing_cpu_share": round(firing_share, 4),
        "flows_per_fire": round(counts["flows"] / max(counts["fired"], 1), 4),
        "verify_differences": len(checked.differences) + len(schedules.differences),
    })  # fmt: skip
    figures["ratio_fire_delay_vs_create_p50"] = round(
        figures["fire_delay_p50_ms"] / max(figures["create_start_p50_ms"], 0.01), 2
    )
    rows_out = [
        [f"schedules (every {interval:g} s)", count],
        ["spread: fires measured", figures["fires"]],
        ["spread: fire delay p50 / p99 / max ms (fire time to flow created)",
         f"{figures['fire_delay_p50_ms']} / {figures['fire_delay_p99_ms']} / "
         f"{figures['fire_delay_max_ms']}"],
        ["spread: to the flow's first node p50 / p99 ms",
         f"{figures['first_node_p50_ms']} / {figures['first_node_p99_ms']}"],
        ["burst: fires measured", figures["burst_fires"]],
        ["burst: fire delay p50 / p99 / max ms",
         f"{figures['burst_fire_delay_p50_ms']} / {figures['burst_fire_delay_p99_ms']} / "
         f"{figures['burst_fire_delay_max_ms']}"],
        ["burst: to the flow's first node p50 / p99 ms",
         f"{figures['burst_first_node_p50_ms']} / {figures['burst_first_node_p99_ms']}"],
        ["create+start over the API p50 / p99 ms (baseline)",
         f"{figures['create_start_p50_ms']} / {figures['create_start_p99_ms']}"],
        ["ratio fire delay vs create+start (p50)", figures["ratio_fire_delay_vs_create_p50"]],
        ["CPU share of the process, idle / firing in bursts",
         f"{figures['idle_cpu_share']} / {figures['firing_cpu_share']}"],
        ["flows per fire", figures["flows_per_fire"]],
        ["verify differences", figures["verify_differences"]],
    ]  # fmt: skip
    notes = [
        f"{count} schedules in one `flowlog serve` (default settings), each every "
        f"{interval:g} s: spread over the interval for {window / 2:.0f} s, then (as many "
        f"others) all due at the same instants for {window / 2:.0f} s; the baseline "
        f"is {creates} create+start requests ({CLIENTS} clients) on the same server just "
        "before. Delays are on the database's clock."
    ]
    return Report("schedules", ["figure", "value"], rows_out, figures, notes)


async def _fire(
    http: aiohttp.ClientSession,
    pid: int,
    prefix: str,
    count: int,
    interval: float,
    seconds: float,
    progress: bool,
    *,
    spread: bool,
) -> tuple[float, float]:
    """Makes ``count`` schedules (their fires spread over the interval, or all at once) and
    lets them fire for ``seconds``; returns the first fire time measured (epoch) and the
    serve process's CPU seconds meanwhile."""
    for n in range(count):
        body: dict[str, Any] = {"scheduleId": f"{prefix}-{n}", "flowName": schedule_flows.NAME,
                                "intervalSeconds": interval, "overlap": "allow"}  # fmt: skip
        if spread:
            # A whole number of intervals after the epoch, plus this schedule's phase.
            body["startAt"] = _at(946_684_800 + interval * n / count).isoformat()
        async with http.post("/api/v1/workflow-schedules", json=body) as answer:
            if answer.status != 200:
                raise RuntimeError(await answer.text())
    # From the next whole interval on: every schedule made, none caught half-made.
    first = (int(time.time() / interval) + 1) * interval
    await asyncio.sleep(max(0.0, first - time.time()))
    cpu = process_cpu_seconds(pid)
    await _wait(prefix, seconds, progress)
    return first, process_cpu_seconds(pid) - cpu


def _at(epoch: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)


async def _creates(http: aiohttp.ClientSession, creates: int) -> list[float]:
    latencies: list[float] = []

    async def client(index: int) -> None:
        for n in range(index, creates, CLIENTS):
            body = {"flowName": schedule_flows.NAME, "bizId": f"direct-{n}", "bizType": "direct",
                    "start": True}  # fmt: skip
            started = time.perf_counter()
            async with http.post("/api/v1/workflow/", json=body) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"create answered {answer.status}")
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return latencies


async def _wait(what: str, seconds: float, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=int(seconds), desc=f"firing ({what})", unit="s", disable=not progress) as bar:
        for _ in range(int(seconds)):
            await asyncio.sleep(1)
            bar.update()
