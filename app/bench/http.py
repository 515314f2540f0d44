"""``flowlog bench http``: the REST API under a few concurrent clients.

A ``flowlog serve`` process (API and reactor together, as deployed) runs on a scratch database;
this process is the clients, so client and server do not share an event loop. A 3-node
definition of ``noop`` executors is registered over REST first. Measured, each by C clients
sending requests back to back on kept-alive connections:

- ``healthz``: ``GET /healthz``, the baseline: the HTTP stack, middlewares and envelope,
  without the database;
- ``create_start``: ``POST /api/v1/workflow/`` with ``"start": true`` (one append each); the
  reactor drives the flows in the same server process meanwhile, as it would in production;
- ``list``: ``GET /api/v1/workflow/`` (newest first, 10 per page, alternately unfiltered and by
  ``bizId``), after every flow has finished;
- ``detail``: ``GET /api/v1/workflow/{id}`` of random flows;
- ``split_create_start``: create+start again, against ``serve --no-reactor`` beside one
  ``flowlog worker`` process that runs the flows (a scratch database of its own).

Each operation reports requests/s, p50 and p99 in milliseconds, and its rate as a ratio of
the baseline's measured in the same run (the machine is shared, absolute figures drift).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp

from flowlog.bench.harness import Report, scratch_database, serve_process, worker_processes
from flowlog.bench.requests import Phase, Request, expect_ok, phase_figures, run_phase
from flowlog.bench.size import Size

CLIENTS = 16
QUICK = {"healthz": 2000, "create_start": 600, "list": 1500, "detail": 1500}
FULL = {"healthz": 10000, "create_start": 3000, "list": 6000, "detail": 6000}
SMOKE = {"healthz": 32, "create_start": 32, "list": 32, "detail": 32}
DEFINITIONS_SEEN = 2.5
"""Seconds for a worker to load a definition registered over REST (its catalog's reload)."""
FLOW_NAME = "bench-http"
DEFINITION = {
    "name": FLOW_NAME,
    "nodes": {
        "start": {"name": "one", "executor": {"type": "noop"}, "success": "two"},
        "two": {"name": "two", "executor": {"type": "noop"}, "success": "three"},
        "three": {"name": "three", "executor": {"type": "noop"}},
    },
}


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    counts = size.pick(FULL, QUICK, SMOKE)
    # The server at its default settings, as deployed.
    async with scratch_database(server_url) as url, serve_process(url) as base:
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(base, connector=connector) as session:
            await expect_ok(session.post("/api/v1/workflow-definitions", json=DEFINITION))
            phases = [await _phase("healthz", counts["healthz"], session, _healthz, progress)]
            created: list[str] = []
            phases.append(
                await _phase(
                    "create_start", counts["create_start"], session, creator(created), progress
                )
            )
            await until_finished(session, len(created))
            rng = random.Random(20261128)
            phases.append(await _phase("list", counts["list"], session, _lister(rng), progress))
            phases.append(
                await _phase("detail", counts["detail"], session, _detailer(created, rng), progress)
            )
    phases.append(await _split(server_url, counts["create_start"], progress))
    return _report(phases, size)


async def _split(server_url: str, creates: int, progress: bool) -> Phase:
    """create+start again, against ``serve --no-reactor`` with one ``flowlog worker`` beside
    it running the flows (the layout that gives the API its own process); its rate is compared
    with the first layout's ``/healthz``."""
    async with (
        scratch_database(server_url) as url,
        serve_process(url, "--no-reactor") as base,
        worker_processes(url, 1),
    ):
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(base, connector=connector) as session:
            await expect_ok(session.post("/api/v1/workflow-definitions", json=DEFINITION))
            await asyncio.sleep(DEFINITIONS_SEEN)
            created: list[str] = []
            phase = await _phase("split_create_start", creates, session, creator(created), progress)
            await until_finished(session, len(created))
    return phase


def _report(phases: list[Phase], size: Size) -> Report:
    figures: dict[str, Any] = {"bench": "http", "size": size.value, "clients": CLIENTS}
    rows = phase_figures(phases, figures)
    notes = [
        f"{CLIENTS} clients on kept-alive connections, one `flowlog serve` process (API and "
        "reactor, default settings) on a scratch database; list and detail "
        "run after every flow finished. split_create_start: `serve --no-reactor` and one "
        "`flowlog worker` on another scratch database (its ratio against the healthz above)."
    ]
    header = ["operation", "requests", "req/s", "p50 ms", "p99 ms", "vs healthz"]
    return Report("http", header, rows, figures, notes)


async def _phase(
    name: str, requests: int, session: aiohttp.ClientSession, request: Request, progress: bool
) -> Phase:
    return await run_phase("http", name, requests, CLIENTS, session, request, progress)


async def _healthz(session: aiohttp.ClientSession, n: int) -> None:
    await expect_ok(session.get("/healthz"))
    return


def creator(created: list[str]) -> Request:
    async def create(session: aiohttp.ClientSession, n: int) -> None:
        body = {"flowName": FLOW_NAME, "bizId": f"biz-{n % 100}", "bizType": "bench", "start": True}
        data = await expect_ok(session.post("/api/v1/workflow/", json=body))
        created.append(data["workFlowId"])

    return create


def _lister(rng: random.Random) -> Request:
    async def list_flows(session: aiohttp.ClientSession, n: int) -> None:
        query = (
            {"pageSize": "10"}
            if n % 2
            else {"pageSize": "10", "bizId": f"biz-{rng.randrange(100)}"}
        )
        await expect_ok(session.get("/api/v1/workflow/", params=query))

    return list_flows


def _detailer(created: list[str], rng: random.Random) -> Request:
    async def detail(session: aiohttp.ClientSession, n: int) -> None:
        await expect_ok(session.get(f"/api/v1/workflow/{rng.choice(created)}"))

    return detail


async def until_finished(session: aiohttp.ClientSession, flows: int) -> None:
    """Returns once ``flows`` flows of the benchmark's definition have finished."""
    query = {"flowName": FLOW_NAME, "status": "Finished", "pageSize": "1"}
    while True:
        async with session.get("/api/v1/workflow/", params=query) as response:
            total = (await response.json())["page"]["total"]
        if total >= flows:
            return
        await asyncio.sleep(0.1)
