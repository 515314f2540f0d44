"""``flowlog bench tasks``, its second part: how soon an idle worker's long poll answers when a
task becomes due.

One worker (a client session of the benchmark's process) long-polls a queue nobody else polls
(``waitSeconds`` 30, ``max`` 1); 50 to 150 ms later (a random pause: the poll waits in the
server by then, at a random phase of its one-second look-again) the benchmark creates and
starts a flow whose first node is on that queue. The create's append records FlowCreated and
FlowStarted; the reactor then starts the node, and that append offers the task. The poll's
answer is timed twice: from the ``recorded_at`` of the offering append (its ``NodeStarted``,
the statement's ``statement_timestamp()``: the database's clock, on this machine, which
``time.time()`` reads too), and from the moment the create was sent (the reactor's step
included). The worker then completes the task, unmeasured. The baseline, sample by sample just
before: the round trip of an empty poll (``waitSeconds`` 0) on the same queue and connection
(and, to say what an empty poll costs beyond HTTP, of ``GET /healthz``).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from tqdm import tqdm

from flowlog.bench.harness import percentile
from flowlog.bench.requests import expect_ok
from flowlog.workflow.streams import flow_stream

QUEUE = "bench-latency"
FLOW_NAME = "bench-tasks-first"
DEFINITION = {
    "name": FLOW_NAME,
    "nodes": {
        "start": {"name": "render", "queue": QUEUE, "success": "finish"},
        "finish": {"name": "finish", "executor": {"type": "noop"}},
    },
}
WORKER = "bench-latency-worker"
PAUSE = (0.05, 0.15)
_FINISHED = """
SELECT coalesce(sum(count), 0)::bigint FROM workflow_counts
WHERE status = 'Finished' AND name = $1
"""
_OFFERED = """
SELECT substr(stream_id, 6) AS flow_id, extract(epoch FROM recorded_at)::float8 AS at
FROM events
WHERE type = 'NodeStarted' AND stream_id = ANY($1::text[]) AND data ->> 'queue' = $2
"""


@dataclass(slots=True)
class Latencies:
    healthz_ms: list[float] = field(default_factory=list)
    empty_poll_ms: list[float] = field(default_factory=list)
    offer_to_task_ms: list[float] = field(default_factory=list)
    create_to_task_ms: list[float] = field(default_factory=list)
    flow_ids: list[str] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)
    """``time.time()`` when each sample's poll answered."""

    def figures(self) -> dict[str, Any]:
        empty_p50 = percentile(self.empty_poll_ms, 0.5)
        offer_p50 = percentile(self.offer_to_task_ms, 0.5)
        return {
            "latency_samples": len(self.offer_to_task_ms),
            "healthz_p50_ms": round(percentile(self.healthz_ms, 0.5), 2),
            "empty_poll_p50_ms": round(empty_p50, 2),
            "empty_poll_p99_ms": round(percentile(self.empty_poll_ms, 0.99), 2),
            "offer_to_task_p50_ms": round(offer_p50, 2),
            "offer_to_task_p99_ms": round(percentile(self.offer_to_task_ms, 0.99), 2),
            "create_to_task_p50_ms": round(percentile(self.create_to_task_ms, 0.5), 2),
            "create_to_task_p99_ms": round(percentile(self.create_to_task_ms, 0.99), 2),
            # Of latencies: higher is slower (an idle poll's answer costs this many empty polls).
            "ratio_latency_vs_empty_poll": round(offer_p50 / empty_p50, 3),
        }


async def _poll(session: aiohttp.ClientSession, wait: float) -> tuple[list[dict[str, Any]], float]:
    """The tasks a poll answered, and ``time.time()`` when it answered."""
    body = {"queue": QUEUE, "workerId": WORKER, "max": 1, "waitSeconds": wait}
    data = await expect_ok(session.post("/api/v1/tasks/poll", json=body))
    return data["tasks"], time.time()


async def measure(
    base: str, db: asyncpg.Connection, samples: int, progress: bool, seed: int = 20261206
) -> Latencies:
    """``samples`` times: an empty poll, then an idle long poll answered by a new flow's task."""
    rng = random.Random(seed)
    found = Latencies()
    bar = tqdm(total=samples, desc="bench tasks poll latency", unit="task", disable=not progress)
    # Two connections: the worker's poll waits on its own while the creator sends.
    async with (
        aiohttp.ClientSession(base) as worker,
        aiohttp.ClientSession(base) as creator,
    ):
        await expect_ok(creator.post("/api/v1/workflow-definitions", json=DEFINITION))
        for n in range(samples):
            start = time.perf_counter()
            await expect_ok(worker.get("/healthz"))
            found.healthz_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            tasks, _ = await _poll(worker, 0)
            found.empty_poll_ms.append((time.perf_counter() - start) * 1000)
            if tasks:
                raise RuntimeError(f"an empty poll leased {tasks}")
            waiting = asyncio.ensure_future(_poll(worker, 30))
            await asyncio.sleep(rng.uniform(*PAUSE))
            if waiting.done():
                raise RuntimeError(f"a long poll answered before any task: {waiting.result()}")
            sent = time.time()
            body = {"flowName": FLOW_NAME, "bizId": f"latency-{n}", "bizType": "bench",
                    "start": True}  # fmt: skip
            flow_id = (await expect_ok(creator.post("/api/v1/workflow/", json=body)))["workFlowId"]
            [task], answered = await asyncio.wait_for(waiting, 60)
            if task["workFlowId"] != flow_id:
                raise RuntimeError(f"the poll answered {task['workFlowId']}, not {flow_id}")
            found.create_to_task_ms.append((answered - sent) * 1000)
            found.flow_ids.append(flow_id)
            found.answered_at.append(answered)
            done = {"taskToken": task["taskToken"], "status": "success"}
            await expect_ok(worker.post("/api/v1/tasks/complete", json=done))
            bar.update()
    bar.close()
    await _until_finished(db, samples)
    rows = await db.fetch(_OFFERED, [flow_stream(f) for f in found.flow_ids], QUEUE)
    offered = {row["flow_id"]: row["at"] for row in rows}
    if len(offered) != len(found.flow_ids):
        raise RuntimeError(f"{len(offered)} offers in the log for {len(found.flow_ids)} flows")
    found.offer_to_task_ms = [
        (at - offered[flow_id]) * 1000
        for flow_id, at in zip(found.flow_ids, found.answered_at, strict=True)
    ]
    return found


async def _until_finished(db: asyncpg.Connection, flows: int) -> None:
    """Returns once ``flows`` flows of the definition have finished (the last one's ``finish``
    node may still be running when its task's completion answered)."""
    deadline = time.monotonic() + 60
    while await db.fetchval(_FINISHED, FLOW_NAME) < flows:
        if time.monotonic() > deadline:
            raise RuntimeError("the latency flows did not all finish within 60 s")
        await asyncio.sleep(0.02)
