"""Appending and reading streams: expected versions, atomicity, hooks, transactions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from flowlog.database import quote_ident
from flowlog.eventstore import (
    LOG_START,
    AppendAlso,
    EventStore,
    Expect,
    LogHorizonError,
    NewEvent,
    RecordedEvent,
    Transaction,
    TransactionAborted,
    WrongExpectedVersion,
    check_log_horizon,
    create_pool,
)
from tests.helpers import wait_readable


def events(*types: str, **data: object) -> list[NewEvent]:
    return [NewEvent(t, dict(data), {"actor": "test"}) for t in types]


async def test_append_returns_what_read_stream_returns(store: EventStore) -> None:
    recorded = await store.append("flow-1", events("Created", "Started", n=1), Expect.NO_STREAM)

    assert [e.version for e in recorded] == [1, 2]
    assert [e.type for e in recorded] == ["Created", "Started"]
    assert recorded[0].position < recorded[1].position
    assert recorded[0].transaction_id == recorded[1].transaction_id
    assert await store.read_stream("flow-1") == recorded
    assert recorded[0].data == {"n": 1}
    assert recorded[0].metadata == {"actor": "test"}


async def test_exact_expected_version_appends_after_it(store: EventStore) -> None:
    await store.append("s", events("A"), Expect.NO_STREAM)
    await store.append("s", events("B", "C"), 1)
    third = await store.append("s", events("D"), 3)

    assert third[0].version == 4
    assert await store.stream_version("s") == 4
    assert [e.type for e in await store.read_stream("s", from_version=2, to_version=3)] == [
        "B",
        "C",
    ]


@pytest.mark.parametrize("expected", [0, 1, 3, Expect.NO_STREAM])
async def test_wrong_expected_version_writes_nothing(
    store: EventStore, expected: int | Expect
) -> None:
    await store.append("s", events("A", "B"), Expect.NO_STREAM)

    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append("s", events("X", "Y"), expected)

    assert caught.value.actual == 2
    assert caught.value.stream_id == "s"
    assert "Stream Version: 2" in str(caught.value)
    assert [e.type for e in await store.read_stream("s")] == ["A", "B"]


async def test_expecting_a_version_of_a_missing_stream_fails(store: EventStore) -> None:
    with pytest.raises(WrongExpectedVersion) as caught:
        await store.append("missing", events("A"), 5)
    assert caught.value.actual == 0
    assert await store.stream_version("missing") == 0


async def test_any_version_appends_at_the_end(store: EventStore) -> None:
    await store.append("s", events("A"), Expect.ANY)
    await store.append("s", events("B", "C"), Expect.ANY)
    assert [(e.version, e.type) for e in await store.read_stream("s")] == [
        (1, "A"),
        (2, "B"),
        (3, "C"),
    ]


@pytest.mark.parametrize(
    ("stream_id", "batch", "expected"),
    [
        ("", events("A"), Expect.ANY),
        ("s", [], Expect.ANY),
        ("s", [NewEvent("", {})], Expect.ANY),
        ("s", events("A"), -1),
        ("s", events("A"), True),
    ],
)
async def test_bad_append_arguments_are_refused(
    store: EventStore, stream_id: str, batch: list[NewEvent], expected: int | Expect
) -> None:
    with pytest.raises(ValueError, match=r"."):
        await store.append(stream_id, batch, expected)
    assert await store.read_all() == []


async def test_concurrent_appends_with_one_expected_version_have_one_winner(
    store: EventStore,
) -> None:
    await store.append("contended", events("Created"), Expect.NO_STREAM)
    writers = 12

    async def attempt(i: int) -> int | None:
        try:
            await store.append("contended", events(f"By{i}", f"By{i}"), 1)
        except WrongExpectedVersion:
            return None
        return i

    results = await asyncio.gather(*(attempt(i) for i in range(writers)))

    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stream = await store.read_stream("contended")
    assert [e.type for e in stream] == ["Created", f"By{winners[0]}", f"By{winners[0]}"]


async def test_concurrent_new_stream_appends_have_one_winner(store: EventStore) -> None:
    async def attempt(i: int) -> bool:
        try:
            await store.append("new", events(f"Created{i}"), Expect.NO_STREAM)
        except WrongExpectedVersion:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(10)))

    assert results.count(True) == 1
    assert len(await store.read_stream("new")) == 1


async def test_concurrent_any_version_appends_all_land_without_gaps(store: EventStore) -> None:
    await asyncio.gather(*(store.append("busy", events(f"E{i}"), Expect.ANY) for i in range(40)))

    stream = await store.read_stream("busy")
    assert [e.version for e in stream] == list(range(1, 41))
    assert sorted(e.type for e in stream) == sorted(f"E{i}" for i in range(40))


async def test_transaction_appends_and_own_sql_commit_together(store: EventStore) -> None:
    await store.pool.execute("CREATE TABLE side (stream text, version bigint)")

    async with store.transaction() as tx:
        recorded = await tx.append("s", events("A"), Expect.NO_STREAM)
        await tx.connection.execute("INSERT INTO side VALUES ($1, $2)", "s", recorded[0].version)

    assert [tuple(r) for r in await store.pool.fetch("SELECT * FROM side")] == [("s", 1)]
    assert len(await store.read_stream("s")) == 1


async def _append_then_fail(store: EventStore, stream: str) -> None:
    async with store.transaction() as tx:
        await tx.append(stream, events("A"), Expect.NO_STREAM)
        assert await tx.stream_version(stream) == 1
        raise RuntimeError("changed my mind")


async def test_transaction_rollback_leaves_no_event(store: EventStore) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"):
        await _append_then_fail(store, "s")

    assert await store.stream_version("s") == 0
    assert await store.read_all() == []


async def _append_and_hold(store: EventStore, event_type: str, release: asyncio.Event) -> None:
    """Appends version 2 of stream "s" in a transaction that commits once released."""
    async with store.transaction() as tx:
        await tx.append("s", events(event_type), 1)
        await release.wait()


async def test_conflict_inside_a_transaction_reports_an_unknown_winner(
    store: EventStore,
) -> None:
    await store.append("s", events("A"), Expect.NO_STREAM)
    winner_may_commit = asyncio.Event()

    async def loser() -> None:
        async with store.transaction() as tx:
            losing = asyncio.create_task(tx.append("s", events("L"), 1))
            await asyncio.sleep(0.1)  # blocked on the winner's uncommitted version 2
            winner_may_commit.set()
            await losing

    winning = asyncio.create_task(_append_and_hold(store, "W", winner_may_commit))
    await asyncio.sleep(0.1)
    with pytest.raises(WrongExpectedVersion) as caught:
        await loser()
    await winning

    assert caught.value.actual is None
    assert [e.type for e in await store.read_stream("s")] == ["A", "W"]


async def _any_version_after_a_lost_race(store: EventStore) -> list[RecordedEvent]:
    """Appends "Any" with Expect.ANY in a transaction while "Held" holds version 2 of stream
    "s" uncommitted, then lets "Held" commit: the any-version append must retry at 3."""
    await store.append("s", events("A"), Expect.NO_STREAM)
    release = asyncio.Event()
    holding = asyncio.create_task(_append_and_hold(store, "Held", release))
    await asyncio.sleep(0.1)
    async with store.transaction() as tx:
        pending = asyncio.create_task(tx.append("s", events("Any"), Expect.ANY))
        await asyncio.sleep(0.1)
        release.set()
        recorded = await pending
        # The transaction is still usable after the savepoint caught the collision.
        assert await tx.connection.fetchval("SELECT 1") == 1
    await holding
    return recorded


async def test_any_version_inside_a_transaction_survives_a_lost_race(store: EventStore) -> None:
    recorded = await _any_version_after_a_lost_race(store)

    assert recorded[0].version == 3
    assert [e.type for e in await store.read_stream("s")] == ["A", "Held", "Any"]


async def test_hooks_run_inside_the_append_transaction(pool: asyncpg.Pool) -> None:
    await pool.execute("CREATE TABLE projected (position bigint PRIMARY KEY, type text)")
    seen: list[int] = []

    async def project(tx: Transaction, recorded: Sequence[RecordedEvent]) -> None:
        await tx.connection.executemany(
            "INSERT INTO projected VALUES ($1, $2)", [(e.position, e.type) for e in recorded]
        )

    async def refuse_bad(tx: Transaction, recorded: Sequence[RecordedEvent]) -> None:
        if any(e.type == "Bad" for e in recorded):
            raise RuntimeError("projection refused")
        seen.extend(e.version for e in recorded)

    store = EventStore(pool, hooks=[project])
    await store.append("s", events("A", "B"), Expect.NO_STREAM, hook=refuse_bad)
    with pytest.raises(RuntimeError, match="projection refused"):
        await store.append("s", events("Bad"), 2, hook=refuse_bad)

    assert [e.type for e in await store.read_stream("s")] == ["A", "B"]
    assert [r["type"] for r in await pool.fetch("SELECT type FROM projected ORDER BY 1")] == [
        "A",
        "B",
    ]
    assert seen == [1, 2]


async def test_on_commit_is_called_after_commits_only(pool: asyncpg.Pool) -> None:
    commits: list[int] = []
    store = EventStore(pool, on_commit=lambda: commits.append(1))

    await store.append("s", events("A"), Expect.NO_STREAM)
    with pytest.raises(WrongExpectedVersion):
        await store.append("s", events("B"), Expect.NO_STREAM)
    with pytest.raises(RuntimeError):
        await _append_then_fail(store, "t")
    async with store.transaction() as tx:
        await tx.connection.execute("SELECT 1")  # no append: nothing to announce
    async with store.transaction() as tx:
        await tx.append("t", events("A"), Expect.NO_STREAM)

    assert len(commits) == 2


async def _batches(store: EventStore, batch_size: int) -> AsyncIterator[list[RecordedEvent]]:
    """Batches of the log, read with ``read_all`` from its start until caught up."""
    after = LOG_START
    while True:
        batch = await store.read_all(after, batch_size)
        if batch:
            yield batch
            after = batch[-1].checkpoint
        if len(batch) < batch_size:
            return


async def test_read_all_pages_through_the_log_in_order(store: EventStore) -> None:
    appended = []
    for i in range(7):
        appended += await store.append(f"s{i % 3}", events("A", "B"), Expect.ANY)
    await wait_readable(store, [e.position for e in appended])

    pages = []
    checkpoint = None
    async for batch in _batches(store, batch_size=4):
        pages.append(len(batch))
        checkpoint = batch[-1].checkpoint
    everything = await store.read_all(limit=100)

    assert pages == [4, 4, 4, 2]
    assert checkpoint == everything[-1].checkpoint
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    assert await store.read_all(after=everything[5].checkpoint, limit=3) == everything[6:9]
    with pytest.raises(ValueError, match="limit"):
        await store.read_all(limit=0)


async def test_an_append_is_one_statement_and_one_round_trip(database_url: str) -> None:
    statements: list[str] = []
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:  # the pool's only connection
            conn.add_query_logger(lambda q: statements.append(q.query))
        store = EventStore(pool)
        await store.append("warm-up", events("A", "B"), Expect.NO_STREAM)  # type introspection
        await store.append("warm-up", events("C"), 2)
        statements.clear()
        await store.append("s", events(*(f"E{i}" for i in range(25))), Expect.NO_STREAM)
        many = list(statements)
        statements.clear()
        await store.append("s", events("Last"), 25)
        one = list(statements)
    finally:
        await pool.close()

    # No BEGIN/COMMIT around it, and no reset query when the pool takes the connection back.
    assert len(many) == 1
    assert "INSERT INTO events" in many[0]
    assert len(one) == 1
    assert "INSERT INTO events" in one[0]


async def test_a_swallowed_error_inside_a_transaction_cannot_pass_for_a_commit(
    pool: asyncpg.Pool,
) -> None:
    commits: list[int] = []
    store = EventStore(pool, on_commit=lambda: commits.append(1))
    await store.append("taken", events("A"), Expect.NO_STREAM)

    async def swallow_an_error() -> None:
        async with store.transaction() as tx:
            await tx.append("mine", events("Important"), Expect.NO_STREAM)
            with contextlib.suppress(asyncpg.DivisionByZeroError):
                await tx.connection.execute("SELECT 1 / 0")  # aborts the transaction

    commits.clear()
    with pytest.raises(TransactionAborted):
        await swallow_an_error()

    assert await store.stream_version("mine") == 0
    assert commits == []


async def test_a_savepoint_rolls_back_only_its_own_part(store: EventStore) -> None:
    async def fail_inside(tx: Transaction) -> None:
        async with tx.savepoint():
            await tx.append("inner", events("X"), Expect.NO_STREAM)
            raise KeyError("inner only")

    async with store.transaction() as tx:
        await tx.append("outer", events("A"), Expect.NO_STREAM)
        with pytest.raises(KeyError):
            await fail_inside(tx)
        async with tx.savepoint():
            await tx.append("kept", events("K"), Expect.NO_STREAM)

    assert await store.stream_version("outer") == 1
    assert await store.stream_version("inner") == 0
    assert await store.stream_version("kept") == 1


async def test_transactions_run_at_read_committed_whatever_the_default(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(
            f"ALTER DATABASE {quote_ident(name)} SET default_transaction_isolation = "
            "'repeatable read'"
        )
    finally:
        await conn.close()
    pool = await create_pool(database_url)
    try:
        store = EventStore(pool)
        assert await pool.fetchval("SHOW default_transaction_isolation") == "repeatable read"
        async with store.transaction() as tx:
            level = await tx.connection.fetchval("SHOW transaction_isolation")
        assert level == "read committed"
        # The any-version retry sees the winner's commit (a repeatable-read snapshot would not).
        recorded = await _any_version_after_a_lost_race(store)
        assert recorded[0].version == 3
    finally:
        await pool.close()


async def test_a_log_restored_with_transaction_ids_from_the_future_is_refused(
    store: EventStore,
) -> None:
    await check_log_horizon(store.pool)  # an empty log is fine
    await store.append("s", events("A"), Expect.NO_STREAM)
    await check_log_horizon(store.pool)  # so is a log written here

    # What pg_dump + restore into a younger cluster leaves: ids ahead of the server's counter.
    await store.pool.execute(
        "INSERT INTO events (transaction_id, stream_id, version, type, data) "
        "VALUES ((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text::xid8, "
        "'restored', 1, 'Old', '{}')"
    )
    with pytest.raises(LogHorizonError, match="restored into another cluster"):
        await check_log_horizon(store.pool)


async def test_append_also_runs_the_callers_statements_in_the_same_statement(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("CREATE TABLE side (stream text PRIMARY KEY, seen bigint, note text)")
    await pool.execute("CREATE TABLE tally (n int)")
    upsert = (
        "INSERT INTO side SELECT $1, (SELECT max(version) FROM appended), $2 "
        "WHERE EXISTS (SELECT 1 FROM appended) "
        "ON CONFLICT (stream) DO UPDATE SET seen = EXCLUDED.seen, note = EXCLUDED.note"
    )
    count = "INSERT INTO tally SELECT $1 WHERE EXISTS (SELECT 1 FROM appended)"
    statements: list[str] = []
    store = EventStore(pool)
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda q: statements.append(q.query))

    also = AppendAlso.of((upsert, ("s", "first")), (count, (1,)))
    await store.append("s", events("A", "B"), Expect.NO_STREAM, also=also)
    await store.append("s", events("C"), 2, also=AppendAlso.of((upsert, ("s", "second"))))
    with pytest.raises(WrongExpectedVersion):
        await store.append("s", events("D"), 1, also=also)  # stale: nothing of it applies

    assert [tuple(r) for r in await pool.fetch("SELECT * FROM side")] == [("s", 3, "second")]
    assert await pool.fetchval("SELECT sum(n) FROM tally") == 1
    appends = [q for q in statements if "INSERT INTO events" in q]
    assert len(appends) == 3  # each append, with its statements, was one statement
    with pytest.raises(ValueError, match="parameters"):
        await store.append("t", events("A"), Expect.ANY, also=AppendAlso.of((count, ())))
