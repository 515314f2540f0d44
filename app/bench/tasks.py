"""``flowlog bench tasks``: nodes run by remote workers over the REST task API, against the
same nodes run in-process.

One ``flowlog serve`` process (API and reactor together, default settings: the deployment
``bench http`` measures) on a scratch database; this process is the HTTP clients. Two
definitions of the same shape, registered over REST: ``prepare`` (noop) -> ``render`` ->
``finish`` (noop), where ``render`` is

- ``in_process``: a local ``noop`` executor, run by the server's reactor (the baseline);
- ``tasks``: offered on the queue ``bench``, to 4 worker processes (app/bench/task_worker.py,
  plain aiohttp) that long-poll ``POST /api/v1/tasks/poll`` (``max`` 10, ``waitSeconds`` 30)
  and complete each task with ``POST /api/v1/tasks/complete``.

Measured:

1. **Throughput.** N flows created and started over HTTP by 16 clients (``"start": true``),
   from the first create to the last FlowFinished seen (a counter of finished flows read every
   20 ms, directly from the database): ``in_process_flows_per_s`` and ``tasks_per_s`` (one
   task a flow), and ``ratio_tasks_vs_in_process`` (the median of the rounds' own ratios;
   goal >= 0.5). Rounds (3; ``--quick`` 2, ``--smoke`` 1) of both, the baseline first or
   second by turns. The workers are started for each task round (new worker ids) and stopped
   after it: the baseline runs with no worker polling. Also the server's CPU per flow in each
   mode, the workers' CPU per task, and tasks per poll. Before the rounds, unmeasured, a small
   round of each (connections, prepared statements, first use).
2. **Poll-to-task latency** (app/bench/task_latency.py): an idle worker's long poll, answered
   by the task of a new flow whose first node is on its queue; p50 and p99 from the offering
   append's ``recorded_at`` (goal p50 < 20 ms), and from the create's sending; the baseline is
   an empty poll's round trip (``ratio_latency_vs_empty_poll``: higher is slower).

Checked as it runs: every flow created finished, the workers completed exactly one task a
flow of the queue's definition and none of their requests failed (the figures say so:
``flows_finished``, ``tasks_completed``, ``worker_failures``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import orjson
from tqdm import tqdm

from flowlog.bench import task_latency
from flowlog.bench.harness import (
    Report,
    median,
    percentile,
    process_cpu_seconds,
    scratch_database,
    served,
)
from flowlog.bench.requests import expect_ok
from flowlog.bench.size import Size
from flowlog.eventstore import connect

QUEUE = "bench"
WORKERS = 4
POLL_MAX = 10
CLIENTS = 16
IN_PROCESS, TASKS = "bench-tasks-in-process", "bench-tasks-remote"
FLOWS = {Size.FULL: 3000, Size.QUICK: 1500, Size.SMOKE: 12}
ROUNDS = {Size.FULL: 3, Size.QUICK: 2, Size.SMOKE: 1}
SAMPLES = {Size.FULL: 200, Size.QUICK: 50, Size.SMOKE: 3}
WARM_UP = 50
GOALS = {"ratio_tasks_vs_in_process": 0.5, "offer_to_task_p50_ms": 20.0}
LAYOUT = "one `flowlog serve` (API and reactor, default settings)"
_SEEN_EVERY = 0.02
_FINISHED = """
SELECT coalesce(sum(count), 0)::bigint FROM workflow_counts
WHERE status = 'Finished' AND name = ANY($1::text[])
"""
_ALL_FINISHED = "SELECT count(*) FILTER (WHERE status = 'Finished'), count(*) FROM workflows"


def _definition(name: str, render: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": {
            "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "render"},
            "render": {"name": "render", "success": "finish", **render},
            "finish": {"name": "finish", "executor": {"type": "noop"}},
        },
    }


DEFINITIONS = [
    _definition(IN_PROCESS, {"executor": {"type": "noop"}}),
    _definition(TASKS, {"queue": QUEUE}),
]


@dataclass(slots=True)
class _Mode:
    """One mode's rounds: seconds, the server's CPU seconds, and (tasks) the workers'."""

    seconds: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    workers_cpu: float = 0.0
    done: list[dict[str, Any]] = field(default_factory=list)
    """What each worker process said it did, every round (the warm-up's too)."""


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    async with scratch_database(server_url) as url:
        figures = await measure(
            url, FLOWS[size], rounds=ROUNDS[size], samples=SAMPLES[size], progress=progress
        )
    return report({"bench": "tasks", "size": size.value, **figures}, size)


async def measure(
    url: str, flows: int, *, rounds: int, samples: int, progress: bool = False
) -> dict[str, Any]:
    """The figures of ``rounds`` rounds of ``flows`` flows in each mode and of ``samples``
    poll latencies, on the (migrated) database of ``url``."""
    modes = {IN_PROCESS: _Mode(), TASKS: _Mode()}
    created = 0
    # The machine is shared: its load says what the absolute figures were measured under.
    load_before = os.getloadavg()[0]
    async with served(url) as (base, server):
        db = await connect(url)
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        try:
            async with aiohttp.ClientSession(base, connector=connector) as session:
                for definition in DEFINITIONS:
                    await expect_ok(session.post("/api/v1/workflow-definitions", json=definition))
                flow = _Flows(session, db, server.pid, base, progress)
                warm_up = min(flows, WARM_UP)
                for name in (IN_PROCESS, TASKS):
                    await flow.round(name, warm_up, "warm-up", _Mode())
                created += 2 * warm_up
                for n in range(rounds):
                    order = (IN_PROCESS, TASKS) if n % 2 == 0 else (TASKS, IN_PROCESS)
                    for name in order:
                        await flow.round(name, flows, f"r{n}", modes[name])
                        created += flows
                latencies = await task_latency.measure(base, db, samples, progress)
                created += samples
                done = flow.done
            counts = await db.fetchrow(_ALL_FINISHED)
            assert counts is not None
            finished, made = counts
        finally:
            await db.close()
    return _figures(flows, rounds, modes, done, latencies.figures()) | {
        "flows_created": created, "flows_in_log": made, "flows_finished": finished,
        "tasks_expected": warm_up + rounds * flows, "cores": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }  # fmt: skip


class _Flows:
    """Rounds of flows created over HTTP, timed to their ends."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        db: asyncpg.Connection,
        server: int,
        base: str,
        progress: bool,
    ) -> None:
        self._session = session
        self._db = db
        self._server = server
        self._base = base
        self._progress = progress
        self.done: list[dict[str, Any]] = []
        """What every worker process said it did, the warm-up's included."""

    async def round(self, name: str, flows: int, tag: str, mode: _Mode) -> None:
        workers = WORKERS if name == TASKS else 0
        async with _workers(self._base, self._session, workers, tag) as running:
            pids = running.pids
            before = await self._db.fetchval(_FINISHED, [name])
            server_cpu = process_cpu_seconds(self._server)
            workers_cpu = [process_cpu_seconds(pid) for pid in pids]
            label = "in-process" if name == IN_PROCESS else "tasks"
            bar = tqdm(total=flows, desc=f"bench tasks {label} {tag}", unit="flow",
                       disable=not self._progress)  # fmt: skip
            start = time.perf_counter()
            creating = asyncio.gather(*(self._create(name, tag, i, flows) for i in range(CLIENTS)))
            try:
                while (finished := await self._db.fetchval(_FINISHED, [name]) - before) < flows:
                    bar.n = finished
                    bar.refresh()
                    if creating.done():
                        creating.result()  # a client's failure ends the run
                    await asyncio.sleep(_SEEN_EVERY)
                mode.seconds.append(time.perf_counter() - start)
                await creating
            finally:
                creating.cancel()
                bar.close()
            mode.server_cpu += process_cpu_seconds(self._server) - server_cpu
            mode.workers_cpu += sum(
                process_cpu_seconds(pid) - cpu for pid, cpu in zip(pids, workers_cpu, strict=True)
            )
        self.done += running.done
        mode.done += running.done

    async def _create(self, name: str, tag: str, client: int, flows: int) -> None:
        for n in range(client, flows, CLIENTS):
            body = {"flowName": name, "bizId": f"{tag}-{n}", "bizType": "bench", "start": True}
            await expect_ok(self._session.post("/api/v1/workflow/", json=body))


@dataclass(slots=True)
class _Running:
    """The worker processes' ids; once they ended, what each said it did."""

    pids: list[int]
    done: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _workers(
    base: str, session: aiohttp.ClientSession, count: int, tag: str
) -> AsyncIterator[_Running]:
    """``count`` worker processes polling the queue, once the server has seen each poll."""
    env = {**os.environ, "FLOWLOG_LOG_LEVEL": "WARNING"}
    ids = [f"bench-{tag}-w{i}" for i in range(count)]
    command = [sys.executable, "-m", "flowlog.bench.task_worker", base, QUEUE]
    processes = [
        await asyncio.create_subprocess_exec(
            *command, worker, "--max", str(POLL_MAX), env=env, stdout=asyncio.subprocess.PIPE
        )
        for worker in ids
    ]
    running = _Running([process.pid for process in processes])
    try:
        await _until_polling(session, ids, processes)
        yield running
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.stdout is not None
            try:
                out = await asyncio.wait_for(process.stdout.read(), 30)
                await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                continue
            if process.returncode == 0 and out.strip():
                running.done.append(orjson.loads(out.strip().splitlines()[-1]))


async def _until_polling(
    session: aiohttp.ClientSession, ids: list[str], processes: list[asyncio.subprocess.Process]
) -> None:
    """Returns once the server has seen a poll of every worker of ``ids``."""
    deadline = time.monotonic() + 60
    while ids:
        queues = (await expect_ok(session.get("/api/v1/tasks/queues")))["queues"]
        seen = {w for q in queues if q["queue"] == QUEUE for w in q["workers"]}
        if set(ids) <= seen:
            return
        if any(p.returncode is not None for p in processes) or time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not all poll: {sorted(set(ids) - seen)}")
        await asyncio.sleep(0.05)


def _figures(
    flows: int,
    rounds: int,
    modes: dict[str, _Mode],
    done: list[dict[str, Any]],
    latencies: dict[str, Any],
) -> dict[str, Any]:
    local, remote = modes[IN_PROCESS], modes[TASKS]
    polls = sum(d["polls"] for d in remote.done)
    empty = sum(d["empty_polls"] for d in remote.done)
    measured = flows * rounds
    # Each round's own ratio of rates: its two halves ran seconds apart, under about one load.
    ratios = [i / t for i, t in zip(local.seconds, remote.seconds, strict=True)]
    leased = sum(d["leased"] for d in remote.done)
    completes = [ms for d in remote.done for ms in d["complete_ms"]]
    return {
        "layout": LAYOUT,
        "flows": flows,
        "rounds": rounds,
        "workers": WORKERS,
        "poll_max": POLL_MAX,
        "clients": CLIENTS,
        "in_process_seconds_each": [round(s, 3) for s in local.seconds],
        "tasks_seconds_each": [round(s, 3) for s in remote.seconds],
        "in_process_flows_per_s": round(flows / median(local.seconds), 1),
        "tasks_per_s": round(flows / median(remote.seconds), 1),
        "ratio_tasks_vs_in_process": round(median(ratios), 3),
        "server_cpu_ms_per_flow_in_process": round(local.server_cpu * 1000 / measured, 3),
        "server_cpu_ms_per_flow_tasks": round(remote.server_cpu * 1000 / measured, 3),
        "workers_cpu_ms_per_task": round(remote.workers_cpu * 1000 / measured, 3),
        "complete_p50_ms": round(percentile(completes, 0.5), 2),
        "complete_p99_ms": round(percentile(completes, 0.99), 2),
        "tasks_per_poll": round(leased / max(polls - empty, 1), 2),
        "worker_polls": polls,
        "worker_empty_polls": empty,
        "worker_processes_reported": len(done),
        "tasks_completed": sum(d["completed"] for d in done),
        "worker_failures": sum(d["failed"] for d in done),
        **latencies,
    }


def report(figures: dict[str, Any], size: Size) -> Report:
    goal_ratio, goal_p50 = GOALS.values()
    each = " / ".join
    rows: list[list[Any]] = [
        ["in-process: flows/s (render a local noop)", figures["in_process_flows_per_s"], ""],
        ["  seconds, each round", each(f"{s:.2f}" for s in figures["in_process_seconds_each"]),
         ""],
        [f"task API: tasks/s ({figures['workers']} worker processes)", figures["tasks_per_s"],
         ""],
        ["  seconds, each round", each(f"{s:.2f}" for s in figures["tasks_seconds_each"]), ""],
        ["ratio tasks/s vs in-process flows/s", figures["ratio_tasks_vs_in_process"],
         f">= {goal_ratio}"],
        ["server CPU ms per flow: in-process / tasks",
         f"{figures['server_cpu_ms_per_flow_in_process']:.2f} / "
         f"{figures['server_cpu_ms_per_flow_tasks']:.2f}", ""],
        ["workers' CPU ms per task", figures["workers_cpu_ms_per_task"], ""],
        ["workers: complete p50 / p99 ms",
         f"{figures['complete_p50_ms']:.2f} / {figures['complete_p99_ms']:.2f}", ""],
        ["tasks per poll (polls that leased any)", figures["tasks_per_poll"], ""],
        ["GET /healthz p50 ms", figures["healthz_p50_ms"], ""],
        ["empty poll p50 / p99 ms (baseline)",
         f"{figures['empty_poll_p50_ms']:.2f} / {figures['empty_poll_p99_ms']:.2f}", ""],
        ["offer -> idle poll answered p50 ms", figures["offer_to_task_p50_ms"],
         f"< {goal_p50:.0f}"],
        ["offer -> idle poll answered p99 ms", figures["offer_to_task_p99_ms"], ""],
        ["create sent -> poll answered p50 / p99 ms",
         f"{figures['create_to_task_p50_ms']:.2f} / {figures['create_to_task_p99_ms']:.2f}", ""],
        ["ratio latency p50 vs empty poll p50", figures["ratio_latency_vs_empty_poll"], ""],
        ["flows finished / created", f"{figures['flows_finished']} / {figures['flows_created']}",
         ""],
        ["tasks completed by workers / flows on the queue",
         f"{figures['tasks_completed']} / {figures['tasks_expected']}", ""],
        ["worker requests failed", figures["worker_failures"], "0"],
    ]  # fmt: skip
    notes = [
        f"{figures['flows']} flows of prepare -> render -> finish a mode and round, created and "
        f"started over HTTP by {figures['clients']} clients; {figures['rounds']} rounds, "
        f"medians. Server: {figures['layout']}. Workers: {figures['workers']} processes, plain "
        f"aiohttp, polls of max {figures['poll_max']} waiting up to 30 s. Latency: "
        f"{figures['latency_samples']} samples of an idle poll answered by a new flow's task "
        "(the ratio of latencies: higher is slower).",
        f"{figures['cores']} cores; load average (1 min) {figures['load_average_before']:.2f} "
        f"before, {figures['load_average_after']:.2f} after.",
    ]
    if size is not Size.FULL:
        notes.append(f"--{size.value}: {figures['flows']} flows a round instead of "
                     f"{FLOWS[Size.FULL]:,}, {figures['latency_samples']} latency samples "
                     f"instead of {SAMPLES[Size.FULL]}.")  # fmt: skip
    return Report("tasks", ["figure", "value", "goal"], rows, figures, notes)
