"""``flowlog bench archive``: what archival costs, and whether it keeps the hot log bounded.

On a scratch database holding the generated histories of N flows (as ``bench projections``
makes them, most ended long ago):

- ``export``: ``flowlog export`` of the whole log to a compressed file, as a process of its own:
  the baseline, flows per second;
- ``archive``: ``flowlog archive`` (retention 1 day) of half the ended flows, as a process of
  its own: sealing, writing the archive, recording it, removing the flows: flows per second,
  and its ratio to the export's;
- appends (a create, one append with its rows, from C clients) for a few seconds alone, then
  for as long again while ``flowlog archive`` removes the other half: p50 and p99 of each;
- the hot log's size under steady load: flows created at a fixed rate and run to their end,
  an archive run (retention = one period) and a VACUUM (standing in for autovacuum) after each
  period; the events table and its indexes after the first period and after the last.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from flowlog.archive.archiver import Archiver
from flowlog.archive.policy import ArchiveSettings, Retention
from flowlog.archive.queries import Q
from flowlog.bench.harness import Report, percentile, scratch_database
from flowlog.bench.projections import generated_log
from flowlog.bench.size import Size
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, connect, create_pool
from flowlog.projections.rebuild import rebuild
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.projection import PROJECTOR

QUICK = {"flows": 6_000, "load_seconds": 4.0, "periods": 4, "period_seconds": 3.0, "rate": 60}
FULL = {"flows": 60_000, "load_seconds": 10.0, "periods": 5, "period_seconds": 8.0, "rate": 120}
SMOKE = {"flows": 400, "load_seconds": 1.0, "periods": 3, "period_seconds": 1.5, "rate": 20}
CLIENTS = 8


async def _noop(node: NodeHandle, ctx: FlowContext) -> None:
    return None


STEADY = WorkflowDefinition(
    "bench-steady",
    {
        "start": NodeDefinition("one", _noop, success="two"),
        "two": NodeDefinition("two", _noop, success="three"),
        "three": NodeDefinition("three", _noop),
    },
)


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    plan = size.pick(FULL, QUICK, SMOKE)
    flows = int(plan["flows"])
    figures: dict[str, Any] = {"bench": "archive", "size": size.value, "flows": flows}
    with tempfile.TemporaryDirectory(prefix="flowlog-bench-archive-") as folder:
        files = Path(folder)
        async with scratch_database(server_url) as url:
            figures["events"] = await generated_log(url, flows, random.Random(20261130), progress)
            pool = await create_pool(url, min_size=1, max_size=4)
            try:
                await rebuild(EventStore(pool), PROJECTOR, progress=progress)
                ended = await pool.fetchval(
                    "SELECT count(*) FROM workflows WHERE status IN ('Finished','Error','Canceled')"
                )
            finally:
                await pool.close()
            figures["ended_flows"] = ended
            figures |= await _export_then_archive(url, files, flows, ended // 2)
            figures |= await _appends_while_archiving(url, files, plan)
        async with scratch_database(server_url) as url:
            figures |= await _steady_load(url, files / "steady", plan, progress)
    return _report(figures)


async def _cli(url: str, files: Path, *args: str) -> tuple[float, bytes]:
    """``flowlog ARGS`` on the scratch database as a process of its own: seconds, stdout."""
    env = {
        **os.environ, "DATABASE_URL": url, "FLOWLOG_LOG_LEVEL": "WARNING",
        "FLOWLOG_RETENTION": "1d", "FLOWLOG_ARCHIVE_DIR": str(files / "archives"),
    }  # fmt: skip
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlog.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"flowlog {' '.join(args)} failed: {err.decode()[-2000:]}")
    return time.perf_counter() - started, out


async def _export_then_archive(url: str, files: Path, flows: int, half: int) -> dict[str, Any]:
    await _cli(url, files, "migrate")  # the environment's retention becomes the database's
    export_s, _ = await _cli(url, files, "export", "-o", str(files / "all.jsonl.gz"),
                             "--no-progress")  # fmt: skip
    archive_s, out = await _cli(url, files, "archive", "--json", "--no-progress", "--limit",
                                str(half))  # fmt: skip
    report = orjson.loads(out.splitlines()[-1])
    export_rate = flows / export_s
    archive_rate = report["flows"] / archive_s
    return {
        "export_seconds": round(export_s, 2),
        "export_flows_per_s": round(export_rate, 1),
        "archive_flows": report["flows"],
        "archive_seconds": round(archive_s, 2),
        "archive_flows_per_s": round(archive_rate, 1),
        "archive_bytes_per_flow": round(report["bytes"] / max(report["flows"], 1), 1),
        "ratio_archive_vs_export": round(archive_rate / export_rate, 3),
        **{f"archive_{phase}_seconds": s for phase, s in report["phases"].items()},
        "remove_ms_per_flow": round(
            1000 * report["phases"].get("remove", 0.0) / max(report["flows"], 1), 3
        ),
    }


async def _appends_while_archiving(url: str, files: Path, plan: dict[str, float]) -> dict[str, Any]:
    seconds = float(plan["load_seconds"])
    async with Engine(url, Registry([STEADY]), run_reactor=False) as engine:
        alone = await _appends(engine, seconds, None)
        archiving = asyncio.create_task(_cli(url, files, "archive", "--json", "--no-progress"))
        with_archive = await _appends(engine, seconds, archiving)
        archive_s, out = await archiving
    report = orjson.loads(out.splitlines()[-1])
    figures: dict[str, Any] = {"archived_during_load": report["flows"],
                               "archive_during_load_seconds": round(archive_s, 2)}  # fmt: skip
    for name, latencies in (("alone", alone), ("archiving", with_archive)):
        figures[f"append_{name}_p50_ms"] = round(percentile(latencies, 0.5), 2)
        figures[f"append_{name}_p99_ms"] = round(percentile(latencies, 0.99), 2)
        figures[f"append_{name}_count"] = len(latencies)
    figures["ratio_append_p99_archiving_vs_alone"] = round(
        figures["append_archiving_p99_ms"] / figures["append_alone_p99_ms"], 3
    )
    return figures


async def _appends(engine: Engine, seconds: float, until: asyncio.Task[Any] | None) -> list[float]:
    """Creates from CLIENTS clients for ``seconds`` (or, with ``until``, at least as long as
    that task runs): each create's latency in ms."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    def going() -> bool:
        return time.perf_counter() < deadline or (until is not None and not until.done())

    async def client(index: int) -> None:
        n = 0
        while going():
            started = time.perf_counter()
            await engine.service.create(f"load-{index}-{n}", "bench", STEADY.name)
            latencies.append((time.perf_counter() - started) * 1000)
            n += 1

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return latencies


async def _steady_load(
    url: str, directory: Path, plan: dict[str, float], progress: bool
) -> dict[str, Any]:
    period = float(plan["period_seconds"])
    rate = float(plan["rate"])
    retention = Retention(default=timedelta(seconds=period))
    sizes: list[int] = []
    archived = 0
    # The engine migrates as the owner (the scratch database's one role): the retention
    # becomes the database's, which the archiver reads.
    async with Engine(url, Registry([STEADY]), retention=retention) as engine:
        archiver = Archiver(engine.service.store, ArchiveSettings(directory))
        owner = await connect(url)
        try:
            for number in range(int(plan["periods"])):
                await _created_at_rate(engine, rate, period, number)
                archived += (await archiver.run()).flows
                await owner.execute("VACUUM events")
                row = await owner.fetchrow(Q.hot_log_size)
                assert row is not None
                sizes.append(row["table_bytes"] + row["index_bytes"])
                if progress:
                    print(f"bench archive: period {number + 1}: hot log {sizes[-1]:,} bytes",
                          file=sys.stderr)  # fmt: skip
        finally:
            await owner.close()
    return {
        "steady_rate_flows_per_s": rate,
        "steady_period_seconds": period,
        "steady_periods": len(sizes),
        "steady_archived": archived,
        "hot_log_bytes_after_1": sizes[0],
        "hot_log_bytes_after_3": sizes[2],
        "hot_log_bytes_after_last": sizes[-1],
        "ratio_hot_log_3_vs_1": round(sizes[2] / sizes[0], 3),
        "ratio_hot_log_last_vs_1": round(sizes[-1] / sizes[0], 3),
    }


async def _created_at_rate(engine: Engine, rate: float, seconds: float, period: int) -> None:
    """Flows created and started at ``rate`` a second for ``seconds`` (the reactor runs them)."""
    started = time.perf_counter()
    n = 0
    pending: list[asyncio.Task[Any]] = []
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate) - n
        for _ in range(max(0, due)):
            pending.append(asyncio.create_task(
                engine.service.create(f"steady-{period}-{n}", "bench", STEADY.name, start=True)
            ))  # fmt: skip
            n += 1
        await asyncio.sleep(0.01)
    await asyncio.gather(*pending)


def _report(figures: dict[str, Any]) -> Report:
    rows = [
        ["export (baseline)", figures["flows"], figures["export_flows_per_s"], 1.0],
        ["archive", figures["archive_flows"], figures["archive_flows_per_s"],
         figures["ratio_archive_vs_export"]],
    ]  # fmt: skip
    notes = [
        f"appends (creates, {CLIENTS} clients): p50/p99 "
        f"{figures['append_alone_p50_ms']}/{figures['append_alone_p99_ms']} ms alone, "
        f"{figures['append_archiving_p50_ms']}/{figures['append_archiving_p99_ms']} ms while "
        f"flowlog archive removed {figures['archived_during_load']} flows "
        f"(p99 ratio {figures['ratio_append_p99_archiving_vs_alone']}).",
        f"hot log (events table and indexes) under {figures['steady_rate_flows_per_s']:.0f} "
        f"flows/s, retention {figures['steady_period_seconds']:.0f} s: "
        f"{figures['hot_log_bytes_after_1']:,} bytes after 1 period, "
        f"{figures['hot_log_bytes_after_3']:,} after 3 "
        f"(ratio {figures['ratio_hot_log_3_vs_1']}), "
        f"{figures['hot_log_bytes_after_last']:,} after {figures['steady_periods']}.",
        f"archives hold {figures['archive_bytes_per_flow']:.0f} bytes a flow (gzip); of the "
        f"archive's time: seal {figures.get('archive_seal_seconds', 0)} s, write "
        f"{figures.get('archive_write_seconds', 0)} s, remove "
        f"{figures.get('archive_remove_seconds', 0)} s "
        f"({figures['remove_ms_per_flow']} ms a flow).",
    ]
    header = ["operation", "flows", "flows/s", "vs export"]
    return Report("archive", header, rows, figures, notes)
