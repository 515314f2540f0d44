"""An optional baseline for ``flowlog bench flows``: DBOS Transact on the same database server.

The baseline of issue 12: DBOS Transact, same database server, 3 trivial steps, best of
1 and 4 caller threads. One DBOS workflow of three steps (each returns a small int, the workflow
returns their sum) is called directly and synchronously, as a DBOS user would, by T threads in
a loop; ``workflows`` calls are split across the T threads and timed from the first call to the
last return. Measured, per T: ``dbos_workflows_per_s_<T>``; then the best rate and its T.

DBOS (PyPI ``dbos``) is not a dependency of flowlog: without it :func:`run` returns None. Its
system database is a scratch database of the same server, dropped afterwards, so flowlog's own
database is never touched and every run starts from an empty DBOS schema.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import importlib.util
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg

from flowlog.bench.harness import discard_database, scratch_name
from flowlog.database import create_database, with_database

# Opens the pool connections and fills DBOS's caches before anything is timed.
WARMUP_WORKFLOWS = 50
WORKFLOW_NAME = "flowlog_bench_three_steps"
STEP_NAME = "flowlog_bench_step"
EXPECTED_RESULT = 1 + 2 + 3


def available() -> bool:
    """Whether DBOS Transact is installed (without importing it: the import is slow)."""
    return importlib.util.find_spec("dbos") is not None


async def run(
    database_url: str, *, workflows: int, threads: tuple[int, ...] = (1, 4)
) -> dict[str, Any] | None:
    """DBOS workflows per second on the server of ``database_url``, or None without DBOS."""
    if not available():
        return None
    name = scratch_name("flowlog_bench_dbos")
    await create_database(database_url, name)
    try:
        url = with_database(database_url, name)
        # DBOS blocks (threads, synchronous SQLAlchemy): keep it off the caller's event loop.
        seconds = await asyncio.to_thread(_measure, url, workflows, threads)
        await _check_completed(url, WARMUP_WORKFLOWS + workflows * len(threads))
    finally:
        # Ends the connections DBOS failed to close: they do not keep the database alive.
        await discard_database(database_url, name)
    rates = {t: workflows / s for t, s in seconds.items()}
    best = max(rates, key=lambda t: rates[t])
    figures: dict[str, Any] = {"dbos_version": importlib.metadata.version("dbos")}
    figures.update({f"dbos_workflows_per_s_{t}": round(r, 1) for t, r in rates.items()})
    figures["dbos_best_workflows_per_s"] = round(rates[best], 1)
    figures["dbos_best_threads"] = best
    return figures


def _measure(system_url: str, workflows: int, threads: tuple[int, ...]) -> dict[int, float]:
    """Seconds for ``workflows`` workflows by each thread count, DBOS launched once for all."""
    # Imported here, untyped: mypy must pass where dbos is not installed.
    dbos: Any = importlib.import_module("dbos")
    DBOS = dbos.DBOS

    def one(value: int) -> int:
        return value

    step = DBOS.step(name=STEP_NAME)(one)

    def three_steps() -> int:
        return int(step(1) + step(2) + step(3))

    workflow = DBOS.workflow(name=WORKFLOW_NAME)(three_steps)
    config = {
        "name": "flowlog-bench",
        "system_database_url": system_url,
        # INFO logs a banner per launch/shutdown (and a Conductor sign-up link) to stdout.
        "log_level": "WARNING",
    }
    try:
        # DBOS is a process-wide singleton: one launch serves every thread count.
        DBOS(config=config)
        DBOS.launch()
        _timed(workflow, WARMUP_WORKFLOWS, max(threads))
        return {t: _timed(workflow, workflows, t) for t in threads}
    finally:
        # The registry too: a second run in this process registers the same names again.
        DBOS.destroy(destroy_registry=True)


def _timed(workflow: Any, workflows: int, threads: int) -> float:
    shares = [workflows // threads + (i < workflows % threads) for i in range(threads)]

    def loop(count: int) -> None:
        for _ in range(count):
            result = workflow()
            if result != EXPECTED_RESULT:
                raise RuntimeError(f"DBOS workflow returned {result!r}, not {EXPECTED_RESULT}")

    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        for future in [pool.submit(loop, share) for share in shares]:
            future.result()
        return time.perf_counter() - start


async def _check_completed(system_url: str, expected: int) -> None:
    """Raises unless DBOS recorded every workflow as SUCCESS (a return value is not proof)."""
    conn = await asyncpg.connect(system_url)
    try:
        done = await conn.fetchval(
            "SELECT count(*) FROM dbos.workflow_status WHERE name = $1 AND status = 'SUCCESS'",
            WORKFLOW_NAME,
        )
    finally:
        await conn.close()
    if done != expected:
        raise RuntimeError(f"DBOS recorded {done} successful workflows, expected {expected}")
