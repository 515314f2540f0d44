"""A rebuild's bulk in several processes (``flowlog rebuild --jobs N``), as ``pg_restore -j``
loads a dump: the flow streams' range is split into parts of about the same number of events
(from a sample of the log's pages), and each part is folded and COPY'd by one of N processes
reading in the bulk's own snapshot (exported by the bulk, imported by each part's reader), so
the copies hold exactly what one process would have loaded.

The fold is Python on one core per process: a rebuild in one process runs at about a fifth of
a plain read of the log (docs/benchmarks.md); its jobs add cores.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from flowlog.eventstore import connect
from flowlog.eventstore.pool import Connection
from flowlog.projections.bulk import Projector, Q, load_flows

PARTS_PER_JOB = 4
"""More parts than jobs: a job that drew a part of long streams is not left alone at the end,
and the progress bar moves as parts end."""
_SAMPLE_PERCENT = 1.0
_SAMPLE_ENOUGH = 1000
"""Fewer sampled events than this: the log is small, its stream ids are read whole."""
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")


async def split_range(conn: Connection, lower: str, upper: str, parts: int) -> list[str]:
    """Bounds that cut [lower, upper) into up to ``parts`` ranges of about the same number of
    events: ``[lower, b1, ..., upper]``, each bound a stream id of the range. A stream id falls
    in exactly one range, so a stream is folded whole by one part; a long stream can make a
    part longer (or two cuts one)."""
    rows = await conn.fetch(Q.stream_id_sample, lower, upper, _SAMPLE_PERCENT)
    if len(rows) < _SAMPLE_ENOUGH:
        rows = await conn.fetch(Q.stream_ids, lower, upper)
    sample = sorted(row[0] for row in rows)
    if not sample:
        return [lower, upper]
    # A cut at the first stream id would leave the first range empty.
    cuts = {sample[len(sample) * i // parts] for i in range(1, parts)} - {lower, sample[0]}
    return [lower, *sorted(cuts), upper]


async def load_in_jobs(
    url: str,
    snapshot: str,
    projector: Projector,
    bounds: list[str],
    jobs: int,
    counted: Callable[[int], None],
) -> int:
    """Loads the flow streams of each range of ``bounds`` into the copies, ``jobs`` ranges at a
    time, each in a process of its own reading in the exported ``snapshot``; returns the events
    read. The first part to fail is raised: the parts not begun are cancelled, those running
    end first (the caller drops the copies)."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not an exported snapshot's id: {snapshot!r}")
    loop = asyncio.get_running_loop()
    # spawn, not fork: the parent runs an event loop and holds open connections.
    executor = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        parts = [
            loop.run_in_executor(executor, load_part, url, snapshot, projector, lower, upper)
            for lower, upper in itertools.pairwise(bounds)
        ]
        events = 0
        for part in asyncio.as_completed(parts):
            loaded = await part
            events += loaded
            counted(loaded)
        return events
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def load_part(url: str, snapshot: str, projector: Projector, lower: str, upper: str) -> int:
    """One part, in a job's process: its range folded into the copies; the events read."""
    return asyncio.run(_load_part(url, snapshot, projector, lower, upper))


async def _load_part(url: str, snapshot: str, projector: Projector, lower: str, upper: str) -> int:
    reader, writer = await connect(url), await connect(url)
    try:
        async with reader.transaction(isolation="repeatable_read", readonly=True):
            # The id was checked against the form PostgreSQL gives it (load_in_jobs); a
            # snapshot cannot be a bound parameter.
            await reader.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return await load_flows(reader, writer, projector, lower, upper, _uncounted)
    finally:
        await asyncio.gather(reader.close(), writer.close(), return_exceptions=True)


def _uncounted(events: int) -> None:
    """A part reports its events to the parent when it ends."""
