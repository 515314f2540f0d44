"""``flowlog bench waiting``: what flows waiting on polling nodes cost one ``flowlog serve``.

N flows (10,000; ``--quick`` 2,000) park in a polling node (the seed's 3 s interval) whose
polls answer "running", in one ``flowlog serve`` process at its default settings. Over a
window of W seconds, measured:

- the process's CPU share (CPU seconds / W) and RSS, against the same process idle (no flows)
  just before, in the same run (``ratio_cpu_waiting_vs_idle``);
- the engine's cost per poll that changed nothing: the process's CPU beyond idle, the
  database's transactions (every statement of the engine is one) and WAL bytes, divided by
  the polls made (the process's ``flowlog_parked_polls``);
- the delay of flows that become ready among them: probes whose operation is done at a known
  time, from that time to their outcome's commit (one interval at most is the aim).

The flows are created by this process on the same database (group-committed appends), the
server claims, submits and parks them; ``flowlog verify`` checks the tables afterwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from flowlog.bench import waiting_flows
from flowlog.bench.harness import Report, percentile, process_cpu_seconds, scratch_database, served
from flowlog.bench.size import Size
from flowlog.engine import Engine
from flowlog.eventstore import EventStore
from flowlog.projections.verify import verify
from flowlog.workflow.definition import Registry
from flowlog.workflow.projection import PROJECTOR

QUICK_FLOWS, FULL_FLOWS, SMOKE_FLOWS = 2000, 10000, 100
QUICK_WINDOW, FULL_WINDOW, SMOKE_WINDOW = 15.0, 30.0, 4.0
PROBES = 20
NEVER = 1e12
"""A ``readyAt`` past any run (JSON has no infinity)."""
CREATE_CONCURRENCY = 32

_SUBMITTED = (
    "SELECT count(*) FROM workflow_nodes WHERE operation_id IS NOT NULL AND status = 'Processing'"
)
_DATABASE = """
SELECT xact_commit + xact_rollback AS transactions, tup_inserted + tup_updated + tup_deleted
       AS rows_written, pg_current_wal_lsn() AS wal
FROM pg_stat_database WHERE datname = current_database()
"""
_READY_DELAYS = """
SELECT extract(epoch FROM e.recorded_at)::float8 - (w.context ->> 'readyAt')::float8 AS delay
FROM workflows AS w
JOIN events AS e ON e.stream_id = 'flow-' || w.id AND e.type = 'NodeSucceeded'
WHERE w.biz_type = 'probe'
"""


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    window = size.pick(FULL_WINDOW, QUICK_WINDOW, SMOKE_WINDOW)
    figures: dict[str, Any] = {
        "bench": "waiting",
        "size": size.value,
        "flows": flows,
        "window_s": window,
        "poll_interval_s": waiting_flows.POLL_INTERVAL,
    }
    registry = Registry(waiting_flows.DEFINITIONS)
    async with scratch_database(server_url) as url:
        args = ("--definitions", "flowlog.bench.waiting_flows")
        async with (
            served(url, *args) as (base, process),
            Engine(url, registry, run_reactor=False, migrate=False) as engine,
        ):
            idle = await _measure(process.pid, engine, base, window / 3)
            await _create(engine, flows, "waiting", NEVER, progress)
            await _until(engine, _SUBMITTED, flows, within=600)
            await asyncio.sleep(waiting_flows.POLL_INTERVAL + 1)  # parked, polled once
            # Ready at the window's end, spread over one interval: polls come at any phase.
            ready_at = time.time() + window
            await _create(engine, PROBES, "probe", ready_at, progress=False)
            waiting = await _measure(process.pid, engine, base, window)
            await _until(engine, "SELECT count(*) FROM workflows WHERE status = 'Finished'",
                         PROBES, within=60)  # fmt: skip
            delays = [row["delay"] for row in await engine.pool.fetch(_READY_DELAYS)]
            checked = await verify(EventStore(engine.pool), PROJECTOR, progress=False)
    polls = max(waiting["polls"], 1)
    extra_cpu = max(0.0, waiting["cpu_s"] - idle["cpu_s"] * window / (window / 3))
    figures.update({
        "idle_cpu_share": round(idle["cpu_s"] / (window / 3), 4),
        "idle_rss_mb": idle["rss_mb"],
        "waiting_cpu_share": round(waiting["cpu_s"] / window, 4),
        "waiting_rss_mb": waiting["rss_mb"],
        "parked_flows": waiting["parked"],
        "polls_per_s": round(waiting["polls"] / window, 1),
        "cpu_us_per_poll": round(extra_cpu * 1e6 / polls, 2),
        "transactions_per_poll": round(waiting["transactions"] / polls, 4),
        "rows_written_per_poll": round(waiting["rows_written"] / polls, 4),
        "wal_bytes_per_poll": round(waiting["wal_bytes"] / polls, 2),
        "ready_delay_p50_s": round(percentile(delays, 0.5), 3),
        "ready_delay_max_s": round(max(delays), 3),
        "verify_differences": len(checked.differences),
    })  # fmt: skip
    figures["ratio_cpu_waiting_vs_idle"] = round(
        figures["waiting_cpu_share"] / max(figures["idle_cpu_share"], 1e-4), 2
    )
    rows = [
        ["flows parked (polling every 3 s)", figures["parked_flows"]],
        ["polls/s", figures["polls_per_s"]],
        ["CPU share of the process, idle (baseline)", figures["idle_cpu_share"]],
        ["CPU share of the process, waiting", figures["waiting_cpu_share"]],
        ["ratio CPU waiting vs idle", figures["ratio_cpu_waiting_vs_idle"]],
        ["RSS MB idle / waiting", f"{figures['idle_rss_mb']} / {figures['waiting_rss_mb']}"],
        ["CPU us per poll (beyond idle)", figures["cpu_us_per_poll"]],
        ["database transactions per poll", figures["transactions_per_poll"]],
        ["rows written per poll", figures["rows_written_per_poll"]],
        ["WAL bytes per poll", figures["wal_bytes_per_poll"]],
        [
            "ready flow's delay p50 / max s",
            f"{figures['ready_delay_p50_s']} / {figures['ready_delay_max_s']}",
        ],
        ["verify differences", figures["verify_differences"]],
    ]
    notes = [
        f"{flows} flows parked in one `flowlog serve` (default settings), measured over "
        f"{window:.0f} s; idle baseline over {window / 3:.0f} s just before; {PROBES} probe "
        "flows become ready at a known time among them. WAL bytes are the server's (the "
        "whole cluster's) during the window."
    ]
    return Report("waiting", ["figure", "value"], rows, figures, notes)


async def _create(engine: Engine, count: int, kind: str, ready_at: float, progress: bool) -> None:
    from tqdm import tqdm

    service = engine.service
    bar = tqdm(total=count, desc=f"create {kind}", unit="flow", disable=not progress)

    async def creator(index: int) -> None:
        for n in range(index, count, CREATE_CONCURRENCY):
            spread = waiting_flows.POLL_INTERVAL * n / count
            context = {"readyAt": ready_at + spread}
            await service.create(
                f"{kind}-{n}", kind, waiting_flows.NAME, context=context, start=True
            )
            bar.update()

    await asyncio.gather(*(creator(i) for i in range(CREATE_CONCURRENCY)))
    bar.close()


async def _until(engine: Engine, query: str, count: int, *, within: float) -> None:
    deadline = time.monotonic() + within
    while await engine.pool.fetchval(query) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {count} after {within:.0f} s: {query}")
        await asyncio.sleep(0.5)


async def _measure(pid: int, engine: Engine, base: str, seconds: float) -> dict[str, Any]:
    """The process's CPU seconds, the database's work and the polls made over ``seconds``;
    RSS and parked flows at the end."""
    cpu, db, polls = (
        process_cpu_seconds(pid),
        await engine.pool.fetchrow(_DATABASE),
        await _polls(base),
    )
    await asyncio.sleep(seconds)
    await engine.pool.execute("SELECT pg_stat_clear_snapshot()")
    db_after = await engine.pool.fetchrow(_DATABASE)
    assert db is not None
    assert db_after is not None
    wal = await engine.pool.fetchval("SELECT $1::pg_lsn - $2::pg_lsn", db_after["wal"], db["wal"])
    metrics = await _metrics(base)
    return {
        "cpu_s": process_cpu_seconds(pid) - cpu,
        "rss_mb": _rss_mb(pid),
        # This process's own two statements (and the snapshot clear) are not the engine's.
        "transactions": db_after["transactions"] - db["transactions"] - 3,
        "rows_written": db_after["rows_written"] - db["rows_written"],
        "wal_bytes": float(wal),
        "polls": metrics.get("flowlog_parked_polls_total", 0.0) - polls,
        "parked": int(metrics.get("flowlog_parked_flows", 0.0)),
    }


async def _polls(base: str) -> float:
    return (await _metrics(base)).get("flowlog_parked_polls_total", 0.0)


async def _metrics(base: str) -> dict[str, float]:
    async with aiohttp.ClientSession(base) as session, session.get("/metrics") as response:
        text = await response.text()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " in line and "{" not in line:
            name, _, value = line.partition(" ")
            values[name] = float(value)
    return values


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
