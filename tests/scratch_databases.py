"""The tests' databases: copies of the migrated template, made one ahead, retired when the test
ends and dropped together when the whole run ends.

PostgreSQL 15's DROP DATABASE waits for an immediate checkpoint with a transaction id of its own:
under the suite's load that wait lasted up to a minute (a sample of pg_stat_activity over a
clean-clone run saw dozens of drops at 20-64 s, waiting on CheckpointStart and CheckpointDone).
Transaction ids belong to the whole cluster, and flowlog reads its log below the oldest one
still open (docs/eventstore.md, "Latency behind long transactions"): every drop held back every
other test's subscriptions, webhooks and catch-ups, in every database of the server, for as
long as it waited. A webhook test waited 20 s for a lag that a drop in another worker held.

So a test's database is retired instead: closed to new connections (autovacuum leaves it
alone too), its sessions ended, renamed to ``flowlog_retired_<run>_...``, which takes
milliseconds and no checkpoint. It is what a benchmark does with its scratch database under
FLOWLOG_BENCH_KEEP_AS, and the run sets that variable: the tests' databases and those of the
benchmarks they run go the same way (flowlog.bench.harness.discard_database). The run's
first process (xdist's controller, or the only one) drops them once every worker has finished
(drop_retired, from tests/conftest.py), many at a time so that a checkpoint serves many. Until
then they take disk: about 9 MB apiece, 8.1 GB (913 databases) at the end of a whole run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import asyncpg

from flowlog.bench.harness import BENCH_KEEP_AS, discard_database
from flowlog.database import create_database, drop_database

T = TypeVar("T")

RUN_VARIABLE = "FLOWLOG_TEST_RUN"
"""The run's id, set by its first process before xdist starts the workers (who inherit it)."""
RETIRED = "flowlog_retired_"
DROPS_AT_ONCE = 16
"""Concurrent drops at the end of the run: they share a checkpoint, and the server, idle
then, allows 100 connections."""
_RETIRED_OF_RUN = "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1"


def retired_prefix() -> str:
    """What this run's retired databases are named with."""
    return f"{RETIRED}{os.environ[RUN_VARIABLE]}_"


def start_run() -> None:
    """In the run's first process: the id its workers name their retired databases with. The
    tests retire theirs as the benchmarks they run put their scratch databases away, under
    FLOWLOG_BENCH_KEEP_AS (``discard_database``, which drops them outside a test run)."""
    os.environ.setdefault(RUN_VARIABLE, secrets.token_hex(4))
    os.environ[BENCH_KEEP_AS] = retired_prefix()


async def drop_retired(server_url: str) -> int:
    """Drops every database this run retired, ``DROPS_AT_ONCE`` at a time: how many."""
    conn = await asyncpg.connect(server_url)
    try:
        names = [r["datname"] for r in await conn.fetch(_RETIRED_OF_RUN, retired_prefix())]
    finally:
        await conn.close()
    if not names:
        return 0
    print(f"\ndropping the run's {len(names)} databases", file=sys.stderr, flush=True)
    started = time.monotonic()
    queue = list(names)

    async def dropper() -> None:
        while queue:
            await drop_database(server_url, queue.pop())

    await asyncio.gather(*(dropper() for _ in range(min(DROPS_AT_ONCE, len(names)))))
    print(f"dropped them in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return len(names)


class ScratchDatabases:
    """One xdist worker's databases, made and retired by a thread of their own so that a test
    does not wait for either."""

    def __init__(self, server_url: str, template: str | None, prefix: str) -> None:
        self._server_url = server_url
        self._template = template
        self._prefix = prefix
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"{prefix}-databases", daemon=True
        )
        self._thread.start()
        self._next: Future[str] | None = None
        self._retiring: list[Future[None]] = []

    def take(self) -> str:
        """The name of a new database (a copy of the template, or empty without one)."""
        made = self._next or self._submit(self._create())
        if self._template is not None:
            # The next test's copy is made while this one runs.
            self._next = self._submit(self._create())
        return made.result()

    def hand_back(self, name: str) -> None:
        """The test is done with ``name``: it is retired in the background."""
        self._retiring.append(self._submit(discard_database(self._server_url, name)))

    def close(self) -> None:
        """Retires the copy made ahead and waits until every database is retired; a
        retirement that failed is raised here, at the end of the worker's session."""
        if self._next is not None:
            self.hand_back(self._next.result())
            self._next = None
        try:
            for retiring in self._retiring:
                retiring.result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def _submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    async def _create(self) -> str:
        name = f"{self._prefix}_{secrets.token_hex(6)}"
        await create_database(self._server_url, name, template=self._template)
        return name
