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
- ``detail``: ``GET /api/v1/workflow/{id}`` of random flows.

Each operation reports requests/s, p50 and p99 in milliseconds, and its rate as a ratio of
the baseline's measured in the same run (the machine is shared, absolute figures drift).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from tqdm import tqdm

from app.bench.harness import Report, percentile, scratch_database, serve_process

CLIENTS = 4
QUICK = {"healthz": 2000, "create_start": 600, "list": 1500, "detail": 1500}
FULL = {"healthz": 10000, "create_start": 3000, "list": 6000, "detail": 6000}
FLOW_NAME = "bench-http"
DEFINITION = {
    "name": FLOW_NAME,
    "nodes": {
        "start": {"name": "one", "executor": {"type": "noop"}, "success": "two"},
        "two": {"name": "two", "executor": {"type": "noop"}, "success": "three"},
        "three": {"name": "three", "executor": {"type": "noop"}},
    },
}
# The reactor's concurrency in the server: trivial executors gain nothing from more (see
# docs/benchmarks.md, bench flows).
REACTOR_CONCURRENCY = 6

Request = Callable[[aiohttp.ClientSession, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


async def run(server_url: str, *, quick: bool, progress: bool = True) -> Report:
    counts = QUICK if quick else FULL
    env = {"FLOWLOG_CONCURRENCY": str(REACTOR_CONCURRENCY)}
    async with scratch_database(server_url) as url, serve_process(url, env=env) as base:
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(base, connector=connector) as session:
            await _expect(session.post("/api/v1/workflow-definitions", json=DEFINITION))
            phases = [await _phase("healthz", counts["healthz"], session, _healthz, progress)]
            created: list[str] = []
            phases.append(
                await _phase(
                    "create_start", counts["create_start"], session, _creator(created), progress
                )
            )
            await _until_finished(session, len(created))
            rng = random.Random(20261128)
            phases.append(await _phase("list", counts["list"], session, _lister(rng), progress))
            phases.append(
                await _phase("detail", counts["detail"], session, _detailer(created, rng), progress)
            )
    return _report(phases, quick)


def _report(phases: list[Phase], quick: bool) -> Report:
    baseline = phases[0].per_s
    figures: dict[str, Any] = {"bench": "http", "quick": quick, "clients": CLIENTS}
    rows = []
    for phase in phases:
        p50 = percentile(phase.latencies_ms, 0.5)
        p99 = percentile(phase.latencies_ms, 0.99)
        ratio = phase.per_s / baseline
        figures |= {
            f"{phase.name}_requests": phase.requests,
            f"{phase.name}_requests_per_s": round(phase.per_s, 1),
            f"{phase.name}_p50_ms": round(p50, 2),
            f"{phase.name}_p99_ms": round(p99, 2),
        }
        if phase is not phases[0]:
            figures[f"ratio_{phase.name}_vs_healthz"] = round(ratio, 3)
        rows.append([phase.name, phase.requests, phase.per_s, p50, p99, round(ratio, 3)])
    notes = [
        f"{CLIENTS} clients on kept-alive connections, one `flowlog serve` process (API and "
        f"reactor, concurrency {REACTOR_CONCURRENCY}) on a scratch database; list and detail "
        "run after every flow finished."
    ]
    header = ["operation", "requests", "req/s", "p50 ms", "p99 ms", "vs healthz"]
    return Report("http", header, rows, figures, notes)


async def _phase(
    name: str, requests: int, session: aiohttp.ClientSession, request: Request, progress: bool
) -> Phase:
    latencies: list[float] = []
    bar = tqdm(total=requests, desc=f"bench http {name}", unit="req", disable=not progress)

    async def client(index: int) -> None:
        for n in range(index, requests, CLIENTS):
            start = time.perf_counter()
            await request(session, n)
            latencies.append((time.perf_counter() - start) * 1000)
            bar.update()

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    seconds = time.perf_counter() - start
    bar.close()
    return Phase(name, requests, seconds, latencies)


async def _expect(call: Any) -> Any:
    """The ``data`` of an answer that must be a success (a failed request ends the bench)."""
    async with call as response:
        body = await response.json()
        if response.status != 200 or body.get("code") != 0:
            raise RuntimeError(f"{response.method} {response.url}: {response.status} {body}")
        return body["data"]


async def _healthz(session: aiohttp.ClientSession, n: int) -> None:
    await _expect(session.get("/healthz"))


def _creator(created: list[str]) -> Request:
    async def create(session: aiohttp.ClientSession, n: int) -> None:
        body = {"flowName": FLOW_NAME, "bizId": f"biz-{n % 100}", "bizType": "bench", "start": True}
        data = await _expect(session.post("/api/v1/workflow/", json=body))
        created.append(data["workFlowId"])

    return create


def _lister(rng: random.Random) -> Request:
    async def list_flows(session: aiohttp.ClientSession, n: int) -> None:
        query = (
            {"pageSize": "10"}
            if n % 2
            else {"pageSize": "10", "bizId": f"biz-{rng.randrange(100)}"}
        )
        await _expect(session.get("/api/v1/workflow/", params=query))

    return list_flows


def _detailer(created: list[str], rng: random.Random) -> Request:
    async def detail(session: aiohttp.ClientSession, n: int) -> None:
        await _expect(session.get(f"/api/v1/workflow/{rng.choice(created)}"))

    return detail


async def _until_finished(session: aiohttp.ClientSession, flows: int) -> None:
    query = {"flowName": FLOW_NAME, "status": "Finished", "pageSize": "1"}
    while True:
        async with session.get("/api/v1/workflow/", params=query) as response:
            total = (await response.json())["page"]["total"]
        if total >= flows:
            return
        await asyncio.sleep(0.1)
