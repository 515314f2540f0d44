"""What the check for keys given twice in a JSON body costs a create over REST.

One in-process service on a scratch database (DATABASE_URL's server), one client sending
creates back to back; rounds alternate with the check on and replaced by a no-op, so both sides
see the same machine at the same time. Prints the median create time of each side and their
ratio (paired: each "off" round against the "on" round next to it).

    .venv/bin/python bench/duplicate_keys.py [ROUNDS]     (default 10 rounds of 300 creates)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

from aiohttp.test_utils import TestClient, TestServer

from flowlog.api import operations
from flowlog.bench.harness import scratch_database
from flowlog.config import Settings
from flowlog.demo import DEFINITIONS
from flowlog.web import create_app
from flowlog.workflow.definition import Registry

BODY = (
    b'{"flowName": "backup", "bizId": "cluster-1", "bizType": "cluster", "start": false,'
    b' "context": {"clusterId": "c-1", "url": "http://backup:8080/v1", "at": "02:00"}}'
)
PER_ROUND = 300


async def main(rounds: int) -> None:
    server = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    checked = operations.refuse_duplicate_keys
    async with scratch_database(server) as url:
        app = create_app(Settings.from_env({}), url, Registry(DEFINITIONS))
        async with TestClient(TestServer(app)) as client:
            headers = {"Content-Type": "application/json"}

            async def one_round() -> float:
                started = time.perf_counter()
                for _ in range(PER_ROUND):
                    answer = await client.post("/api/v1/workflow/", data=BODY, headers=headers)
                    assert answer.status == 200, await answer.text()
                return (time.perf_counter() - started) / PER_ROUND

            await one_round()  # warm up: prepared statements, caches
            on, off = [], []
            for _ in range(rounds):
                operations.refuse_duplicate_keys = checked
                on.append(await one_round())
                operations.refuse_duplicate_keys = lambda raw: None
                off.append(await one_round())
            operations.refuse_duplicate_keys = checked
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    print(f"create with the check:    {statistics.median(on) * 1e3:.3f} ms (median of rounds)")
    print(f"create without the check: {statistics.median(off) * 1e3:.3f} ms")
    print(f"ratio on/off: {statistics.median(ratios):.3f} (median of {rounds} paired rounds)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
