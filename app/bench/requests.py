"""Timing HTTP requests against a ``flowlog serve`` process: what ``bench http`` and ``bench
console`` share. C clients send requests back to back on kept-alive connections; each phase
reports requests/s and latency percentiles, and its rate as a ratio of a baseline phase
measured in the same run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tqdm import tqdm

from flowlog.bench.harness import percentile

Request = Callable[[aiohttp.ClientSession, int], Awaitable[float | None]]
"""Sends request number n; returns the server's own time for it in ms, if it said."""


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    server_ms: list[float] = field(default_factory=list)
    """What the server said it spent (``Server-Timing``), when it says."""

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


async def run_phase(
    bench: str,
    name: str,
    requests: int,
    clients: int,
    session: aiohttp.ClientSession,
    request: Request,
    progress: bool,
) -> Phase:
    latencies: list[float] = []
    server: list[float] = []
    bar = tqdm(total=requests, desc=f"bench {bench} {name}", unit="req", disable=not progress)

    async def client(index: int) -> None:
        for n in range(index, requests, clients):
            start = time.perf_counter()
            said = await request(session, n)
            latencies.append((time.perf_counter() - start) * 1000)
            if said is not None:
                server.append(said)
            bar.update()

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    seconds = time.perf_counter() - start
    bar.close()
    return Phase(name, requests, seconds, latencies, server)


def phase_figures(phases: Sequence[Phase], figures: dict[str, Any]) -> list[list[Any]]:
    """Each phase's figures (into ``figures``, ratios against the first phase under
    ``ratio_<name>_vs_<first>``) and its row of the table."""
    baseline = phases[0]
    rows = []
    for phase in phases:
        p50 = percentile(phase.latencies_ms, 0.5)
        p99 = percentile(phase.latencies_ms, 0.99)
        ratio = phase.per_s / baseline.per_s
        figures |= {
            f"{phase.name}_requests": phase.requests,
            f"{phase.name}_requests_per_s": round(phase.per_s, 1),
            f"{phase.name}_p50_ms": round(p50, 2),
            f"{phase.name}_p99_ms": round(p99, 2),
        }
        row: list[Any] = [phase.name, phase.requests, phase.per_s, p50, p99, round(ratio, 3)]
        if phase.server_ms:
            server_p50 = percentile(phase.server_ms, 0.5)
            server_p99 = percentile(phase.server_ms, 0.99)
            figures[f"{phase.name}_server_p50_ms"] = round(server_p50, 2)
            figures[f"{phase.name}_server_p99_ms"] = round(server_p99, 2)
            row += [server_p50, server_p99]
        if phase is not baseline:
            figures[f"ratio_{phase.name}_vs_{baseline.name}"] = round(ratio, 3)
        rows.append(row)
    return rows


async def expect_ok(call: Any) -> Any:
    """The ``data`` of an answer that must be a success (a failed request ends the bench)."""
    async with call as response:
        body = await response.json()
        if response.status != 200 or body.get("code") != 0:
            raise RuntimeError(f"{response.method} {response.url}: {response.status} {body}")
        return body["data"]
