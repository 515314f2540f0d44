#!/usr/bin/env python3
"""Where the fold's time goes, by event type: the microseconds each type's ``evolve_owned``
takes, over the histories `flowlog bench projections` generates (decoded once, folded
``--rounds`` times; the timer's own cost taken off). Run it with each installation's Python
to compare two versions of the fold:

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python bench/fold_events.py --flows 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import defaultdict
from typing import Any

from flowlog.bench.harness import scratch_database
from flowlog.bench.projections import generated_log
from flowlog.eventstore import RecordedEvent, connect
from flowlog.workflow.fold import evolve_owned
from flowlog.workflow.streams import decode_recorded


async def histories(server_url: str, flows: int) -> list[list[tuple[Any, Any]]]:
    async with scratch_database(server_url) as url:
        await generated_log(url, flows, random.Random(20261128), False)
        conn = await connect(url)
        try:
            # Written out, not taken from flowlog's query files: the script runs on older
            # installations too.
            rows = await conn.fetch(
                "SELECT position, transaction_id, stream_id, version, type, data, metadata, "
                "recorded_at FROM events WHERE stream_id LIKE 'flow-%' ORDER BY stream_id, version"
            )
        finally:
            await conn.close()
    streams: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for row in rows:
        event = RecordedEvent(*row)
        streams[event.stream_id].append((decode_recorded(event), event.recorded_at))
    return list(streams.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folded = asyncio.run(histories(os.environ["DATABASE_URL"], args.flows))
    clock = time.perf_counter
    started = clock()
    for _ in range(100_000):
        clock()
    timer = (clock() - started) / 100_000
    spent: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for _ in range(args.rounds):
        for history in folded:
            state = None
            for event, at in history:
                began = clock()
                state = evolve_owned(state, event, at)
                spent[type(event).__name__] += clock() - began - timer
                counts[type(event).__name__] += 1
    total = sum(spent.values()) / sum(counts.values())
    print(f"{'event':22} {'folded':>9} {'us each':>8}")
    for name in sorted(spent, key=lambda n: -counts[n]):
        print(f"{name:22} {counts[name]:9d} {spent[name] / counts[name] * 1e6:8.2f}")
    print(f"{'all':22} {sum(counts.values()):9d} {total * 1e6:8.2f}")


if __name__ == "__main__":
    main()
