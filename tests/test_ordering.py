"""No reader ever skips a committed event, although transactions commit out of sequence order.

Writers append in transactions that hold their (early) positions open for a while before they
commit or roll back; one transaction stays open for over a second while the others commit
events with later positions. Readers tail the log throughout. Each reader must see every
committed event exactly once, in the one order the final log has.

The last test runs the same workload against a reader that orders by position alone (the
naive mechanism) and shows that it does skip events: the workload really exercises the race
that the real mechanism closes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import pytest

from flowlog.eventstore import (
    Checkpoint,
    EventStore,
    Expect,
    NewEvent,
    OrderConflict,
    RecordedEvent,
)

ReadBatch = Callable[[Checkpoint, int], Awaitable[list[RecordedEvent]]]
# Whether the log holds events after a checkpoint that the reader has yet to see.
HasMore = Callable[[Checkpoint], Awaitable[bool]]

# Orders by position only, as if positions became visible in order: they do not.
NAIVE_READ = """
SELECT position, transaction_id, stream_id, version, type, data, metadata, recorded_at
FROM events WHERE position > $1 ORDER BY position LIMIT $2
"""
NAIVE_MORE = "SELECT EXISTS (SELECT 1 FROM events WHERE position > $1)"
FINAL_LOG = """
SELECT position, transaction_id, stream_id, version, type, data, metadata, recorded_at
FROM events ORDER BY transaction_id, position
"""


@dataclass
class Ledger:
    """What the writers did, to check the readers against."""

    committed_tags: set[str] = field(default_factory=set)
    rolled_back_tags: set[str] = field(default_factory=set)
    # (lowest position written, commit time) of each committed transaction
    commits: list[tuple[int, float]] = field(default_factory=list)
    long_tx: tuple[int, float] | None = None


async def _writer(store: EventStore, ledger: Ledger, writer: int, transactions: int) -> None:
    rng = random.Random(writer)
    for n in range(transactions):
        tags = [f"w{writer}-t{n}-e{k}" for k in range(rng.randint(1, 3))]
        stream = f"stream-{rng.randint(0, 9)}"
        rollback = rng.random() < 0.2
        try:
            async with store.transaction() as tx:
                recorded = await tx.append(
                    stream, [NewEvent("Tagged", {"tag": t}) for t in tags], Expect.ANY
                )
                # The positions are taken; hold them while other writers commit later ones.
                await asyncio.sleep(rng.uniform(0, 0.02))
                if rollback:
                    raise _RollBack
        except (_RollBack, OrderConflict):
            # OrderConflict: a younger transaction wrote the stream first; nothing was kept.
            ledger.rolled_back_tags.update(tags)
            continue
        ledger.commits.append((recorded[0].position, time.monotonic()))
        ledger.committed_tags.update(tags)


async def _long_writer(store: EventStore, ledger: Ledger, hold: float) -> None:
    async with store.transaction() as tx:
        recorded = await tx.append("long", [NewEvent("Tagged", {"tag": "long"})], Expect.ANY)
        await asyncio.sleep(hold)
    ledger.long_tx = (recorded[0].position, time.monotonic())
    ledger.committed_tags.add("long")


class _RollBack(Exception):
    pass


async def _tail(
    read: ReadBatch, more: HasMore, limit: int, done: asyncio.Event
) -> list[RecordedEvent]:
    """Reads batches until the writers are done and nothing is left to read.

    An empty read after the writers are done is not the end: a transaction of another database
    of the cluster (another test worker) may still hold the horizon below the last events.
    """
    seen: list[RecordedEvent] = []
    checkpoint = Checkpoint(0, 0)
    while True:
        finished = done.is_set()
        batch = await read(checkpoint, limit)
        seen.extend(batch)
        if batch:
            checkpoint = batch[-1].checkpoint
        elif finished and not await more(checkpoint):
            return seen
        else:
            await asyncio.sleep(0.002)


async def _run_workload(
    store: EventStore, readers: list[tuple[ReadBatch, HasMore, int]]
) -> tuple[Ledger, list[list[RecordedEvent]]]:
    ledger = Ledger()
    done = asyncio.Event()
    tails = [asyncio.create_task(_tail(read, more, limit, done)) for read, more, limit in readers]
    long_writer = asyncio.create_task(_long_writer(store, ledger, hold=1.5))
    await asyncio.sleep(0.05)  # the long transaction takes its position first
    await asyncio.gather(*(_writer(store, ledger, w, 60) for w in range(6)), long_writer)
    done.set()
    return ledger, list(await asyncio.gather(*tails))


def _naive_reader(pool: asyncpg.Pool) -> tuple[ReadBatch, HasMore, int]:
    async def read(after: Checkpoint, limit: int) -> list[RecordedEvent]:
        rows = await pool.fetch(NAIVE_READ, after.position, limit)
        return [RecordedEvent(*row) for row in rows]

    async def more(after: Checkpoint) -> bool:
        # As naive as the read: whatever lies below the last position seen is never looked at.
        return bool(await pool.fetchval(NAIVE_MORE, after.position))

    return read, more, 5


@pytest.mark.slow
async def test_tailing_readers_see_every_committed_event_once_in_one_order(
    store: EventStore,
) -> None:
    ledger, seen_by = await _run_workload(
        store,
        [(store.read_all, store.has_events_after, 5), (store.read_all, store.has_events_after, 50)],
    )

    final = [RecordedEvent(*row) for row in await store.pool.fetch(FINAL_LOG)]
    final_tags = [e.data["tag"] for e in final]
    # The log holds exactly the committed events, each once.
    assert sorted(final_tags) == sorted(ledger.committed_tags)
    assert not ledger.rolled_back_tags & set(final_tags)
    # The workload committed events out of position order: the long transaction's position is
    # below positions that other transactions committed while it stayed open.
    assert ledger.long_tx is not None
    long_position, long_commit = ledger.long_tx
    assert any(pos > long_position and at < long_commit for pos, at in ledger.commits)
    for seen in seen_by:
        # Every committed event exactly once, in the final log's order: the order a reader
        # sees never changes afterwards, whatever its batch size.
        assert [e.position for e in seen] == [e.position for e in final]
        assert seen == final


@pytest.mark.slow
async def test_a_reader_ordering_by_position_alone_skips_events(store: EventStore) -> None:
    ledger, (naive_seen,) = await _run_workload(store, [_naive_reader(store.pool)])

    # The log itself, not read_all: another database's open transaction may hold its horizon.
    final_positions = {row["position"] for row in await store.pool.fetch(FINAL_LOG)}
    skipped = final_positions - {e.position for e in naive_seen}
    assert ledger.long_tx is not None
    assert ledger.long_tx[0] in skipped
