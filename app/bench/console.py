"""``flowlog bench console``: the console's pages at a million flows.

1. Generate N flows' histories (a million; 50,000 with ``--quick``) as ``bench projections``
   does, and rebuild the projections from them.
2. Serve them with a ``flowlog serve --no-reactor`` process (the console and API only).
3. Request each page back to back from one client (an operator: what matters is how long a
   page takes, not how many a busy server serves; ``bench http`` measures that): the flows page
   (unfiltered, by status, by definition and status), a flow's page (now, and at its first
   version: time travel), the live fragment of a flow, the definitions page. Baseline of the
   same run: ``/healthz``.

Each page reports requests/s, p50/p99 as the client saw them and as the server says it spent
rendering (``Server-Timing``), and its rate as a ratio of the baseline's.
"""

from __future__ import annotations

import random
import re
from typing import Any

import aiohttp

from flowlog.bench.harness import Report, scratch_database, serve_process
from flowlog.bench.projections import generated_log, sample_flow_ids
from flowlog.bench.requests import Phase, Request, expect_ok, phase_figures, run_phase
from flowlog.bench.size import Size
from flowlog.eventstore import EventStore, create_pool
from flowlog.projections.rebuild import rebuild
from flowlog.workflow.projection import PROJECTOR

CLIENTS = 1
FULL_FLOWS = 1_000_000
QUICK_FLOWS = 50_000
FULL_REQUESTS = 3000
QUICK_REQUESTS = 500
SMOKE_FLOWS, SMOKE_REQUESTS = 300, 20
_TIMING = re.compile(r"render;dur=([0-9.]+)")


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    requests = size.pick(FULL_REQUESTS, QUICK_REQUESTS, SMOKE_REQUESTS)
    rng = random.Random(20261129)
    figures: dict[str, Any] = {"bench": "console", "size": size.value, "flows": flows,
                               "clients": CLIENTS}  # fmt: skip
    async with scratch_database(server_url) as url:
        figures["events"] = await generated_log(url, flows, rng, progress)
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            await rebuild(EventStore(pool), PROJECTOR, progress=progress)
            await pool.execute("ANALYZE workflows; ANALYZE workflow_nodes")
            sample = await sample_flow_ids(pool)
        finally:
            await pool.close()
        async with serve_process(url, "--no-reactor") as base:
            connector = aiohttp.TCPConnector(limit=CLIENTS)
            async with aiohttp.ClientSession(base, connector=connector) as session:
                pages = {"healthz": _healthz, **_pages(sample, rng)}
                phases = [
                    await run_phase("console", name, requests, CLIENTS, session, get, progress)
                    for name, get in pages.items()
                ]
    return _report(phases, figures)


async def _healthz(session: aiohttp.ClientSession, n: int) -> None:
    await expect_ok(session.get("/healthz"))


def _pages(sample: list[str], rng: random.Random) -> dict[str, Request]:
    def page(path: Any) -> Request:
        async def get(session: aiohttp.ClientSession, n: int) -> float | None:
            target = path() if callable(path) else path
            async with session.get(target) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {target}: {response.status}")
                found = _TIMING.search(response.headers.get("Server-Timing", ""))
                return float(found.group(1)) if found else None

        return get

    return {
        "flows": page("/"),
        "flows_by_status": page("/?status=Error"),
        "flows_by_definition_status": page("/?flowName=restore&status=Processing"),
        "flow": page(lambda: f"/flows/{rng.choice(sample)}"),
        "flow_at_version": page(lambda: f"/flows/{rng.choice(sample)}?version=1"),
        "flow_fragment": page(lambda: f"/console/flows/{rng.choice(sample)}?since=1"),
        "definitions": page("/definitions"),
    }


def _report(phases: list[Phase], figures: dict[str, Any]) -> Report:
    rows = phase_figures(phases, figures)
    for row in rows:
        row += [""] * (8 - len(row))  # the baseline has no server time
    header = ["page", "requests", "req/s", "p50 ms", "p99 ms", "vs healthz", "server p50",
              "server p99"]  # fmt: skip
    notes = [
        f"{figures['flows']:,} flows ({figures['events']:,} events); {CLIENTS} client on a "
        "kept-alive connection against one `flowlog serve --no-reactor`; server = the "
        "page's own time (Server-Timing), client = the whole request."
    ]
    return Report("console", header, rows, figures, notes)
