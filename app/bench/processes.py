"""``flowlog bench processes``: flows/s with the reactor in 0, 1 and 2 worker processes.

How to deploy on one machine: the same flows (3 ``noop`` nodes, registered over REST) are
created and started over HTTP by 16 clients against

- ``serve``: one ``flowlog serve`` process, API and reactor together (the baseline);
- ``serve --no-reactor`` beside 1 ``flowlog worker`` process;
- ``serve --no-reactor`` beside 2 ``flowlog worker`` processes;

each on a fresh scratch database of the same server, at default settings. Measured: flows/s
from the first create to the last flow Finished, each process's CPU share meanwhile, and
``ratio_flows_<layout>_vs_serve``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp

from flowlog.bench.harness import (
    Report,
    process_cpu_seconds,
    scratch_database,
    served,
    worker_processes,
)
from flowlog.bench.http import CLIENTS, DEFINITION, DEFINITIONS_SEEN, creator, until_finished
from flowlog.bench.requests import expect_ok, run_phase
from flowlog.bench.size import Size

QUICK_FLOWS, FULL_FLOWS, SMOKE_FLOWS = 600, 3000, 32
LAYOUTS = (("serve", 0), ("serve + 1 worker", 1), ("serve + 2 workers", 2))


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    figures: dict[str, Any] = {"bench": "processes", "size": size.value, "flows": flows,
                               "clients": CLIENTS, "cores": os.cpu_count()}  # fmt: skip
    rows = []
    baseline = None
    for name, workers in LAYOUTS:
        result = await _layout(server_url, flows, workers, progress)
        key = name.replace(" + ", "_").replace(" ", "_")
        figures[f"flows_per_s_{key}"] = result["flows_per_s"]
        figures[f"cpu_share_{key}"] = result["cpu_shares"]
        if baseline is None:
            baseline = result["flows_per_s"]
        else:
            figures[f"ratio_flows_{key}_vs_serve"] = round(result["flows_per_s"] / baseline, 3)
        shares = " + ".join(f"{share:.2f}" for share in result["cpu_shares"])
        rows.append([name, result["flows_per_s"], shares,
                     round(result["flows_per_s"] / baseline, 2)])  # fmt: skip
    notes = [
        f"{flows} flows of 3 noop nodes created and started over HTTP by {CLIENTS} clients; "
        f"each layout on its own scratch database, default settings; {os.cpu_count()} cores "
        "shared by the processes, PostgreSQL and the clients."
    ]
    header = ["layout", "flows/s", "CPU share: serve + workers", "vs serve"]
    return Report("processes", header, rows, figures, notes)


async def _layout(server_url: str, flows: int, workers: int, progress: bool) -> dict[str, Any]:
    args = ("--no-reactor",) if workers else ()
    async with scratch_database(server_url) as url, served(url, *args) as (base, server):
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with (
            aiohttp.ClientSession(base, connector=connector) as session,
            worker_processes(url, workers) as pids,
        ):
            await expect_ok(session.post("/api/v1/workflow-definitions", json=DEFINITION))
            await asyncio.sleep(DEFINITIONS_SEEN)
            processes = [server.pid, *pids]
            cpu = [process_cpu_seconds(pid) for pid in processes]
            start = time.perf_counter()
            await run_phase("processes", f"{workers} workers", flows, CLIENTS, session,
                            creator([]), progress)  # fmt: skip
            await until_finished(session, flows)
            seconds = time.perf_counter() - start
            shares = [
                round((process_cpu_seconds(pid) - before) / seconds, 3)
                for pid, before in zip(processes, cpu, strict=True)
            ]
    return {"flows_per_s": round(flows / seconds, 1), "cpu_shares": shares}
