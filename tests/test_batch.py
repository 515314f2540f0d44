"""Group commit: appends to many streams in one statement; one stream's refusal or error
never fails the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from flowlog.eventstore import (
    EventStore,
    Expect,
    GroupCommit,
    NewEvent,
    OrderConflict,
    RecordedEvent,
    StreamAppend,
    WrongExpectedVersion,
)
from flowlog.eventstore.batch import Statement, as_columns


def events(*types: str) -> list[NewEvent]:
    return [NewEvent(t, {"t": t}, {"actor": "test"}) for t in types]


async def test_a_batch_appends_each_stream_after_its_own_expected_version(
    store: EventStore,
) -> None:
    await store.append("b", events("B1"), Expect.NO_STREAM)

    results = await store.append_batch([
        StreamAppend("a", events("A1", "A2"), Expect.NO_STREAM),
        StreamAppend("b", events("B2", "B3", "B4"), 1),
        StreamAppend("c", events("C1"), 0),
    ])  # fmt: skip

    assert [[e.version for e in r] for r in results if isinstance(r, list)] == [
        [1, 2], [2, 3, 4], [1],
    ]  # fmt: skip
    for result in results:
        assert isinstance(result, list)
        assert await store.read_stream(result[0].stream_id, result[0].version) == result
    # One statement, one transaction: every event shares its transaction id.
    assert len({e.transaction_id for r in results if isinstance(r, list) for e in r}) == 1


async def test_a_stale_stream_is_refused_and_the_others_are_appended(store: EventStore) -> None:
    await store.append("stale", events("S1", "S2"), Expect.NO_STREAM)

    results = await store.append_batch([
        StreamAppend("fresh-1", events("F1"), Expect.NO_STREAM),
        StreamAppend("stale", events("S3", "S4"), 1),
        StreamAppend("fresh-2", events("G1", "G2"), Expect.NO_STREAM),
    ])  # fmt: skip

    refused = results[1]
    assert isinstance(refused, WrongExpectedVersion)
    assert (refused.expected, refused.actual) == (1, 2)
    assert [e.type for e in await store.read_stream("stale")] == ["S1", "S2"]
    assert [e.type for e in await store.read_stream("fresh-1")] == ["F1"]
    assert [e.type for e in await store.read_stream("fresh-2")] == ["G1", "G2"]


async def test_a_stream_written_concurrently_is_refused_without_failing_the_batch(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """Another transaction holds the stream's next version while the batch runs: the batch
    waits for it, and when it commits the batch leaves that stream out (ON CONFLICT), not
    failing the statement; the other streams of the batch are appended."""
    await store.append("contested", events("C1"), Expect.NO_STREAM)
    async with store.transaction() as tx:
        await tx.append("contested", events("Theirs"), 1)
        appends = [
            StreamAppend("bystander", events("B1"), Expect.NO_STREAM),
            StreamAppend("contested", events("Ours", "Ours too"), 1),
        ]
        batch = asyncio.create_task(store.append_batch(appends))
        await _until_waiting_on_a_lock(pool)
    results = await batch

    assert isinstance(results[0], list)
    assert isinstance(results[1], WrongExpectedVersion)
    assert [e.type for e in await store.read_stream("contested")] == ["C1", "Theirs"]
    assert [e.type for e in await store.read_stream("bystander")] == ["B1"]


async def _until_waiting_on_a_lock(pool: asyncpg.Pool) -> None:
    for _ in range(500):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batch never waited on the other transaction")


async def test_bad_batches_are_refused_before_the_database(store: EventStore) -> None:
    with pytest.raises(ValueError, match="at most once"):
        await store.append_batch([
            StreamAppend("s", events("A"), 0), StreamAppend("s", events("B"), 1),
        ])  # fmt: skip
    with pytest.raises(ValueError, match="exact expected versions"):
        await store.append_batch([StreamAppend("s", events("A"), Expect.ANY)])
    with pytest.raises(ValueError, match="at least one event"):
        await store.append_batch([StreamAppend("s", [], 0)])
    assert await store.append_batch([]) == []
    assert await store.stream_version("s") == 0


async def test_an_order_conflict_is_told_apart_inside_a_transaction(store: EventStore) -> None:
    """A batch sent inside a longer transaction whose stream head a younger transaction
    wrote meanwhile: refused as out of order (not as a stale version), nothing written."""
    async with store.transaction() as older:
        await older.append("elsewhere", events("X"), Expect.NO_STREAM)  # takes an old xid
        await store.append("s", events("Young"), Expect.NO_STREAM)  # a younger transaction
        from flowlog.eventstore.batch import append_batch

        results = await append_batch(older.connection, [StreamAppend("s", events("Old"), 1)])
        assert isinstance(results[0], OrderConflict)
    assert [e.type for e in await store.read_stream("s")] == ["Young"]


async def test_a_batch_in_a_transaction_appends_to_a_stream_the_transaction_wrote(
    store: EventStore,
) -> None:
    """Its own head is not a younger transaction's: the batch appends after it."""
    from flowlog.eventstore.batch import append_batch

    async with store.transaction() as tx:
        await tx.append("s", events("First"), Expect.NO_STREAM)
        results = await append_batch(tx.connection, [StreamAppend("s", events("Next"), 1)])
        assert isinstance(results[0], list)
        assert [e.version for e in results[0]] == [2]
    assert [e.type for e in await store.read_stream("s")] == ["First", "Next"]


# -- the caller's set-based statements, and GroupCommit ---------------------------------------

TAG = """
INSERT INTO tags (stream_id, tag)
SELECT r.stream_id, r.tag FROM unnest($1::text[], $2::text[]) AS r(stream_id, tag)
WHERE r.stream_id IN (SELECT stream_id FROM appended)
"""


@pytest.fixture
async def tags(pool: asyncpg.Pool) -> None:
    await pool.execute("CREATE TABLE tags (stream_id text, tag text UNIQUE)")


def tagging(items: Sequence[tuple[str, int, str]]) -> tuple[list[StreamAppend], list[Statement]]:
    appends = [StreamAppend(stream, events("E"), version) for stream, version, _ in items]
    rows = [(stream, tag) for stream, _, tag in items]
    return appends, [(TAG, as_columns(rows, 2))]


async def test_the_callers_statements_act_only_for_the_appended_streams(
    store: EventStore, pool: asyncpg.Pool, tags: None
) -> None:
    await store.append("old", events("E"), Expect.NO_STREAM)
    appends, also = tagging([("new", 0, "for new"), ("old", 0, "for old (stale)")])

    results = await store.append_batch(appends, also=also)

    assert isinstance(results[0], list)
    assert isinstance(results[1], WrongExpectedVersion)
    assert await pool.fetch("SELECT stream_id, tag FROM tags") == [("new", "for new")]


async def test_group_commit_coalesces_concurrent_appends_into_one_statement(
    store: EventStore, pool: asyncpg.Pool, tags: None
) -> None:
    commits: GroupCommit[tuple[str, int, str]] = GroupCommit(tagging, _sender(store))

    results = await asyncio.gather(*(
        commits.append((f"s-{n}", 0, f"tag-{n}"), f"s-{n}") for n in range(20)
    ))  # fmt: skip

    assert all(isinstance(r, list) and r[0].version == 1 for r in results)
    # The first append goes alone, at once (no timer); the 19 that came while it was in
    # flight go together: two statements with two in flight at most.
    assert commits.appends == 20
    assert commits.batches <= 3
    assert await pool.fetchval("SELECT count(*) FROM tags") == 20
    transactions = await pool.fetchval("SELECT count(DISTINCT transaction_id) FROM events")
    assert transactions == commits.batches


async def test_an_item_that_fails_the_statement_fails_alone(
    store: EventStore, pool: asyncpg.Pool, tags: None
) -> None:
    """A unique key of the caller's statement taken by an earlier append fails the batch's
    statement as a whole: every item is sent again alone, and only the guilty one fails."""
    appends, also = tagging([("first", 0, "taken")])
    await store.append_batch(appends, also=also)
    commits: GroupCommit[tuple[str, int, str]] = GroupCommit(tagging, _sender(store), in_flight=1)
    # Fill the one slot so that the three below wait and go as one batch.
    blocker = asyncio.create_task(commits.append(("blocker", 0, "blocker"), "blocker"))
    await asyncio.sleep(0)
    outcomes = await asyncio.gather(
        commits.append(("a", 0, "a"), "a"),
        commits.append(("guilty", 0, "taken"), "guilty"),
        commits.append(("b", 0, "b"), "b"),
        return_exceptions=True,
    )
    await blocker

    assert isinstance(outcomes[0], list)
    assert isinstance(outcomes[1], asyncpg.UniqueViolationError)
    assert isinstance(outcomes[2], list)
    assert await store.stream_version("guilty") == 0
    assert sorted(r["tag"] for r in await pool.fetch("SELECT tag FROM tags")) == [
        "a", "b", "blocker", "taken",
    ]  # fmt: skip
    # the blocker, the batch of three that failed, then each of the three alone
    assert commits.batches == 5


async def test_appends_to_one_stream_go_in_separate_batches(store: EventStore) -> None:
    def plain(items: Sequence[tuple[str, int]]) -> tuple[list[StreamAppend], list[Statement]]:
        return [StreamAppend(s, events("E"), v) for s, v in items], []

    commits: GroupCommit[tuple[str, int]] = GroupCommit(plain, _sender(store), in_flight=1)
    first, second = await asyncio.gather(
        commits.append(("s", 0), "s"), commits.append(("s", 0), "s")
    )

    # Both expected version 0: one batch each, so the second is refused by the first.
    assert isinstance(first, list)
    assert isinstance(second, WrongExpectedVersion)
    assert commits.batches == 2


def _sender(store: EventStore) -> Any:
    async def send(
        appends: list[StreamAppend], also: list[Statement]
    ) -> list[list[RecordedEvent] | Exception]:
        return list(await store.append_batch(appends, also=also))

    return send


async def test_an_append_made_as_the_last_batch_returns_is_sent(store: EventStore) -> None:
    """The caller whose batch just returned appends again at once: a flusher must take it (a
    flusher counted as busy until its task's done callback ran would leave it waiting)."""

    def plain(items: Sequence[str]) -> tuple[list[StreamAppend], list[Statement]]:
        return [StreamAppend(s, events("E"), 0) for s in items], []

    commits: GroupCommit[str] = GroupCommit(plain, _sender(store), in_flight=1)
    for n in range(5):
        # asyncio.timeout, not wait_for: wait_for would run the append in a task of its own,
        # a turn later, when the race is over.
        async with asyncio.timeout(10):
            result = await commits.append(f"s-{n}", f"s-{n}")
        assert isinstance(result, list)
    assert commits.batches == 5
