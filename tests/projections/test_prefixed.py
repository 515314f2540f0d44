"""The small projections' shared pieces: a stream prefix read whole, and the drift lines."""

from __future__ import annotations

import asyncpg

from flowlog.eventstore import EventStore, Expect, NewEvent
from flowlog.projections.prefixed import drift, streams_under


def test_drift_names_each_key_that_differs_or_is_missing_in_key_order() -> None:
    folds = {("b", 2): (1, "x"), ("a", 1): (1, "y"), ("c", 3): (3,)}
    rows = {("a", 1): (1, "y"), ("b", 2): (2, "x"), ("d", 4): (4,)}
    lines = drift(folds, rows, lambda key: f"thing {key[0]} version {key[1]}", "the log")
    assert lines == [
        "thing b version 2: the table has (2, 'x'), the log (1, 'x')",
        "thing c version 3: the table has None, the log (3,)",
        "thing d version 4: the table has (4,), the log None",
    ]
    assert drift(rows, dict(rows), str) == []


async def test_streams_under_a_prefix_are_read_whole_and_nothing_beside_them(
    pool: asyncpg.Pool,
) -> None:
    store = EventStore(pool)
    for stream, count in (("key-1", 2), ("key-2", 1), ("kez-1", 1), ("key", 1), ("ke", 1)):
        events = [NewEvent("E", {"n": n}, {}) for n in range(count)]
        await store.append(stream, events, Expect.NO_STREAM)
    async with pool.acquire() as conn:
        streams = await streams_under(conn, "key-")
    assert {s: [e.version for e in events] for s, events in streams.items()} == {
        "key-1": [1, 2],
        "key-2": [1],
    }
