"""``flowlog bench export``: taking the log elsewhere, and the memory it takes.

A scratch database gets the histories of N flows (as ``bench projections`` makes them). Then:

- export: ``flowlog export`` runs as a process of its own, twice: the first tenth of the log
  (``--until``), then all of it; its peak resident memory (VmHWM) is sampled each time. Memory
  that does not grow with the log is the claim (bounded memory).
- baseline for export: the same rows, in the same order, written by PostgreSQL's own
  ``COPY ... TO`` through the same driver: ``ratio_export_vs_copy``.
- import: ``import_log`` into a second scratch database: the copy of the events (parsing and
  checking the file, COPY), then the rebuild of projections and work; then ``verify``.
- baseline for import: PostgreSQL's ``COPY ... FROM`` of the baseline's file into a table
  like ``events`` (same columns and indexes): ``ratio_import_vs_copy``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flowlog.audit.transfer import import_log
from flowlog.bench.harness import Report, scratch_database
from flowlog.bench.projections import definitions, generate_log
from flowlog.bench.size import Size
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, connect, create_pool
from flowlog.projections.verify import verify
from flowlog.workflow.definition import Registry
from flowlog.workflow.projection import PROJECTOR

FULL_FLOWS = 300_000
QUICK_FLOWS = 20_000
SMOKE_FLOWS = 300
_SAMPLE_SECONDS = 0.02
_BASELINE_ROWS = (
    "SELECT position, stream_id, version, type, data, metadata, recorded_at "
    "FROM events ORDER BY transaction_id, position"
)
_BASELINE_TABLE = "CREATE TABLE copy_baseline (LIKE events INCLUDING DEFAULTS INCLUDING INDEXES)"
_TENTH = "SELECT recorded_at FROM events ORDER BY transaction_id, position OFFSET $1 LIMIT 1"


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    figures: dict[str, Any] = {"bench": "export", "size": size.value, "flows": flows}
    with tempfile.TemporaryDirectory(prefix="flowlog-bench-export-") as folder:
        files = Path(folder)
        async with scratch_database(server_url) as source:
            registry = Registry(definitions())
            async with Engine(source, registry, run_reactor=False):
                pass  # records the definitions
            conn = await connect(source)
            try:
                figures["events"] = await generate_log(
                    conn, registry, flows, random.Random(20261128), progress
                )
                started = time.perf_counter()
                await conn.copy_from_query(_BASELINE_ROWS, output=files / "baseline.copy")
                figures["copy_out_events_per_s"] = round(
                    figures["events"] / (time.perf_counter() - started)
                )
                tenth = await conn.fetchval(_TENTH, figures["events"] // 10)
            finally:
                await conn.close()
            small = await _export_process(
                source, files / "tenth.jsonl", "--until", tenth.isoformat()
            )
            full = await _export_process(source, files / "log.jsonl")
        figures |= {
            "export_events_per_s": round(figures["events"] / full["seconds"]),
            "export_bytes": (files / "log.jsonl").stat().st_size,
            "export_peak_rss_mb_tenth": small["peak_mb"],
            "export_peak_rss_mb_all": full["peak_mb"],
            "ratio_export_rss_all_vs_tenth": round(full["peak_mb"] / small["peak_mb"], 3),
        }
        figures["ratio_export_vs_copy"] = round(
            figures["export_events_per_s"] / figures["copy_out_events_per_s"], 3
        )
        async with scratch_database(server_url) as target:
            await _import(target, files, figures, progress)
    return _report(figures)


async def _export_process(url: str, path: Path, *extra: str) -> dict[str, float]:
    """Runs ``flowlog export`` in a process of its own; its seconds and peak memory (MB)."""
    env = {**os.environ, "DATABASE_URL": url, "FLOWLOG_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlog.cli", "export", "-o", str(path), "--no-progress", *extra,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    peak_kb = 0
    while process.returncode is None:
        peak_kb = max(peak_kb, _peak_kb(process.pid))
        try:
            await asyncio.wait_for(process.wait(), _SAMPLE_SECONDS)
        except TimeoutError:
            continue
    if process.returncode != 0:
        raise RuntimeError(f"flowlog export exited with {process.returncode}")
    return {"seconds": time.perf_counter() - started, "peak_mb": round(peak_kb / 1024, 1)}


def _peak_kb(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def _import(url: str, files: Path, figures: dict[str, Any], progress: bool) -> None:
    conn = await connect(url)
    try:
        await conn.execute(_BASELINE_TABLE)
        started = time.perf_counter()
        await conn.copy_to_table(
            "copy_baseline", source=files / "baseline.copy",
            columns=["position", "stream_id", "version", "type", "data", "metadata",
                     "recorded_at"],
        )  # fmt: skip
        figures["copy_in_events_per_s"] = round(figures["events"] / (time.perf_counter() - started))
        await conn.execute("DROP TABLE copy_baseline")
    finally:
        await conn.close()
    # Blocking reads are fine here: the benchmark's loop runs nothing else meanwhile.
    with (files / "log.jsonl").open("rb") as source:
        report = await import_log(url, source, progress=progress)
    copy_seconds = report.phases["copy"]
    figures |= {
        "import_events_per_s": round(report.events / copy_seconds),
        "import_copy_seconds": round(copy_seconds, 1),
        "import_rebuild_seconds": round(report.phases["rebuild"], 1),
        "import_total_seconds": round(report.seconds, 1),
        "ratio_import_vs_copy": round(
            report.events / copy_seconds / figures["copy_in_events_per_s"], 3
        ),
    }
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        checked = await verify(EventStore(pool), PROJECTOR, progress=progress)
    finally:
        await pool.close()
    figures["verify_differences"] = len(checked.differences)


def _report(figures: dict[str, Any]) -> Report:
    rows = [
        ["events", figures["events"]],
        ["export events/s", figures["export_events_per_s"]],
        ["COPY TO events/s (baseline)", figures["copy_out_events_per_s"]],
        ["ratio export vs COPY TO", figures["ratio_export_vs_copy"]],
        ["export file MB", round(figures["export_bytes"] / 1e6, 1)],
        ["export peak RSS MB, a tenth of the log", figures["export_peak_rss_mb_tenth"]],
        ["export peak RSS MB, all of it", figures["export_peak_rss_mb_all"]],
        ["import events/s (copy phase)", figures["import_events_per_s"]],
        ["COPY FROM events/s (baseline)", figures["copy_in_events_per_s"]],
        ["ratio import vs COPY FROM", figures["ratio_import_vs_copy"]],
        ["import total s (copy, rebuild, work)", figures["import_total_seconds"]],
        ["verify differences", figures["verify_differences"]],
    ]
    notes = [
        f"{figures['flows']} flows; export in a process of its own (peak resident memory "
        "sampled every 20 ms); import copies in one transaction, then rebuilds the projections."
    ]
    return Report("export", ["figure", "value"], rows, figures, notes)
