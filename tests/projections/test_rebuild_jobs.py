"""A rebuild's bulk in several processes (projections/rebuild_jobs.py): the flow streams split
into ranges, each folded by a job in the bulk's exported snapshot."""

from __future__ import annotations

import itertools

import asyncpg
import pytest

from flowlog.eventstore import EventStore, Expect, NewEvent
from flowlog.projections.bulk import prefix_range
from flowlog.projections.rebuild import rebuild
from flowlog.projections.rebuild_jobs import load_in_jobs, split_range
from flowlog.workflow.fold import FoldError
from flowlog.workflow.projection import PROJECTOR


async def flow_streams(store: EventStore, count: int, events: int = 3) -> list[str]:
    """``count`` flow streams of ``events`` events each (not folded: only their ids matter)."""
    ids = [f"flow-{n:05d}" for n in range(count)]
    for stream_id in ids:
        await store.append(stream_id, [NewEvent("Tick", {"n": n}) for n in range(events)],
                           Expect.NO_STREAM)  # fmt: skip
    return ids


async def test_the_ranges_cover_the_flows_once_in_parts_of_about_the_same_size(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    ids = await flow_streams(store, 200)
    await store.append("definition-x", [NewEvent("Tick", {})], Expect.NO_STREAM)
    lower, upper = prefix_range("flow-")

    bounds = await split_range(pool, lower, upper, 4)

    assert bounds[0] == lower
    assert bounds[-1] == upper
    assert bounds == sorted(set(bounds))
    assert set(bounds[1:-1]) <= set(ids)  # cut at a stream: none is split
    parts = [[i for i in ids if a <= i < b] for a, b in itertools.pairwise(bounds)]
    assert [i for part in parts for i in part] == ids
    assert [len(part) for part in parts] == [50, 50, 50, 50]


async def test_a_log_with_fewer_streams_than_parts_is_cut_at_each_and_an_empty_one_not_at_all(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    lower, upper = prefix_range("flow-")
    assert await split_range(pool, lower, upper, 8) == [lower, upper]

    ids = await flow_streams(store, 3)

    assert await split_range(pool, lower, upper, 8) == [lower, ids[1], ids[2], upper]


@pytest.mark.parametrize(
    "snapshot", ["", "x", "00000003-0000001B-1'; DROP TABLE events; --", "0000-00\x00-1"]
)
async def test_only_an_exported_snapshots_id_reaches_the_jobs(
    database_url: str, pool: asyncpg.Pool, snapshot: str
) -> None:
    with pytest.raises(ValueError, match="not an exported snapshot's id"):
        await load_in_jobs(database_url, snapshot, PROJECTOR, ["flow-", "flow."], 2, print)
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def test_a_part_that_cannot_fold_fails_the_rebuild_and_leaves_the_tables_as_they_were(
    store: EventStore, pool: asyncpg.Pool, database_url: str
) -> None:
    """A history no decision could have made (here: a flow whose first event starts a node)
    fails its job; the parent raises it, the other parts stop, the copies are dropped."""
    started = {"node_id": "n.1", "key": "start", "name": "prepare", "kind": "sync", "attempt": 1}
    for n in range(30):
        await store.append(f"flow-{n:05d}", [NewEvent("NodeStarted", started)], Expect.NO_STREAM)
    before = await pool.fetch("SELECT * FROM workflows")

    with pytest.raises(FoldError, match="starts with FlowCreated"):
        await rebuild(store, PROJECTOR, progress=False, jobs=2, url=database_url)

    assert await pool.fetch("SELECT * FROM workflows") == before
    copies = await pool.fetchval("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%_rebuild'")
    assert copies == 0


async def test_more_jobs_need_the_database_url(store: EventStore) -> None:
    with pytest.raises(ValueError, match="database's URL"):
        await rebuild(store, PROJECTOR, progress=False, jobs=2)
    with pytest.raises(ValueError, match="at least one job"):
        await rebuild(store, PROJECTOR, progress=False, jobs=0)
