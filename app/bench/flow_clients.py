"""Clients that create and start flows and wait for them to finish: what ``bench flows`` and its
slow-executor phase share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tqdm import tqdm

from flowlog.engine import Engine

CLIENTS = 8
# A whole number: sum() of bigint is numeric (a Decimal), which tqdm cannot divide by a float.
_FINISHED = "SELECT coalesce(sum(count), 0)::bigint FROM workflow_counts WHERE status = 'Finished'"


async def create_and_finish(
    engine: Engine,
    name: str,
    flows: int,
    progress: bool,
    *,
    desc: str = "bench flows",
    tick: Callable[[], None] = lambda: None,
) -> tuple[list[str], float]:
    """Creates and starts ``flows`` flows of ``name`` by ``CLIENTS`` concurrent clients, waits
    until they have all finished; returns their ids and the seconds from the first create to
    the last end. ``tick()`` is called at every look at the count (every 50 ms)."""
    service = engine.service
    created: list[str] = []
    bar = tqdm(total=flows, desc=desc, unit="flow", disable=not progress)
    start = time.perf_counter()

    async def client(index: int) -> None:
        for n in range(index, flows, CLIENTS):
            created.append((await service.create(f"biz-{n}", "bench", name, start=True)).flow_id)

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    finished = 0
    while finished < flows:
        # From the status counters (a few rows): counting events would scan the log 20 times
        # a second, a load of its own on the database being measured.
        finished = await engine.pool.fetchval(_FINISHED)
        tick()
        bar.n = finished
        bar.refresh()
        if finished < flows:
            await asyncio.sleep(0.05)
    seconds = time.perf_counter() - start
    bar.close()
    return created, seconds
