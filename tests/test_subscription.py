"""Catch-up subscriptions: stored checkpoints, exactly-once effects, wake-ups, competition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import asyncpg
import pytest

from flowlog.eventstore import (
    LOG_START,
    Checkpoint,
    EventStore,
    Expect,
    Listener,
    NewEvent,
    Notifier,
    RecordedEvent,
    Subscription,
    SubscriptionConflict,
    Transaction,
    connect,
    create_pool,
)
from tests.helpers import wait_readable

EFFECTS = "CREATE TABLE effects (position bigint PRIMARY KEY, type text NOT NULL)"


async def record_effects(tx: Transaction, events: Sequence[RecordedEvent]) -> None:
    # The primary key turns a second processing of any event into an error.
    await tx.connection.executemany(
        "INSERT INTO effects VALUES ($1, $2)", [(e.position, e.type) for e in events]
    )


async def effects(pool: asyncpg.Pool) -> list[int]:
    return [r["position"] for r in await pool.fetch("SELECT position FROM effects ORDER BY 1")]


async def append_many(store: EventStore, count: int, stream: str = "s") -> list[int]:
    """Appends ``count`` events and waits until readers can see them all."""
    positions = []
    for i in range(count):
        recorded = await store.append(stream, [NewEvent(f"E{i}", {"i": i})], Expect.ANY)
        positions.append(recorded[0].position)
    await wait_readable(store, positions)
    return positions


@pytest.fixture
async def with_effects(pool: asyncpg.Pool) -> asyncpg.Pool:
    await pool.execute(EFFECTS)
    return pool


async def test_a_restarted_subscription_continues_at_its_checkpoint(
    store: EventStore, with_effects: asyncpg.Pool
) -> None:
    positions = await append_many(store, 10)

    first = Subscription(store, "projector", record_effects, batch_size=4)
    with pytest.raises(SubscriptionConflict, match="register"):
        await first.run_batch()
    await first.register()
    await first.register()
    assert (await first.run_batch()).handled == 4
    assert await first.checkpoint() != LOG_START

    # A new instance (a restarted process) picks up where the stored checkpoint says.
    second = Subscription(store, "projector", record_effects, batch_size=4)
    outcomes = [await second.run_batch() for _ in range(3)]

    assert [o.handled for o in outcomes] == [4, 2, 0]
    assert await effects(with_effects) == positions
    last = (await store.read_all())[-1]
    assert await second.checkpoint() == last.checkpoint


async def test_a_failing_handler_rolls_back_its_effects_and_checkpoint(
    store: EventStore, with_effects: asyncpg.Pool
) -> None:
    positions = await append_many(store, 6)
    calls = 0

    async def fail_on_second_batch(tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        nonlocal calls
        calls += 1
        await record_effects(tx, events)
        if calls == 2:
            raise RuntimeError("handler crashed after writing")

    flaky = Subscription(store, "flaky", fail_on_second_batch, batch_size=3)
    await flaky.register()
    await flaky.run_batch()
    checkpoint = await flaky.checkpoint()
    with pytest.raises(RuntimeError, match="crashed"):
        await flaky.run_batch()

    assert await flaky.checkpoint() == checkpoint
    assert await effects(with_effects) == positions[:3]
    assert (await flaky.run_batch()).handled == 3  # the batch is retried as a whole
    assert await effects(with_effects) == positions


async def test_run_consumes_until_stopped_and_a_handler_error_ends_it(
    store: EventStore, with_effects: asyncpg.Pool
) -> None:
    positions = await append_many(store, 5)
    sub = Subscription(store, "runner", record_effects, batch_size=2, poll_interval=0.05)
    running = asyncio.create_task(sub.run())
    await _until(lambda: effects(with_effects), positions)
    sub.stop()
    await asyncio.wait_for(running, 5)

    async def broken(tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        raise ValueError("poison event")

    await append_many(store, 1)
    with pytest.raises(ValueError, match="poison"):
        await asyncio.wait_for(Subscription(store, "runner", broken).run(), 5)
    assert await effects(with_effects) == positions


async def test_a_notification_wakes_a_subscription_long_before_its_poll_interval(
    database_url: str, with_effects: asyncpg.Pool
) -> None:
    # Two "processes": a writer with its own pool and notifier, a reader with its own listener.
    writer_pool = await create_pool(database_url)
    notifier = Notifier(writer_pool)
    notifier.start()
    writer = EventStore(writer_pool, on_commit=notifier.wake)
    listener = Listener(partial(connect, database_url))
    await listener.start()
    reader = EventStore(with_effects)
    sub = Subscription(reader, "woken", record_effects, listener=listener, poll_interval=60)
    running = asyncio.create_task(sub.run())
    try:
        await asyncio.sleep(0.3)  # the subscription has polled once and sleeps for 60 s
        recorded = await writer.append("s", [NewEvent("Ping", {})], Expect.NO_STREAM)
        # Far below the 60 s poll; a transaction of another database may hold the horizon a while.
        await _until(lambda: effects(with_effects), [recorded[0].position], within=20)
        assert listener.received >= 1
    finally:
        sub.stop()
        await asyncio.wait_for(running, 5)
        await listener.close()
        await notifier.close()
        await writer_pool.close()


async def test_events_behind_an_open_transaction_are_held_back_then_delivered_in_order(
    store: EventStore, with_effects: asyncpg.Pool
) -> None:
    sub = Subscription(store, "held", record_effects)
    await sub.register()
    release = asyncio.Event()

    async def early_but_slow() -> list[RecordedEvent]:
        async with store.transaction() as tx:
            recorded = await tx.append("slow", [NewEvent("Early", {})], Expect.NO_STREAM)
            await release.wait()
        return recorded

    slow = asyncio.create_task(early_but_slow())
    await asyncio.sleep(0.1)
    late = await store.append("fast", [NewEvent("Late", {})], Expect.NO_STREAM)

    outcome = await sub.run_batch()
    assert (outcome.handled, outcome.held_back) == (0, True)

    release.set()
    early = await slow
    await wait_readable(store, [early[0].position, late[0].position])
    outcome = await sub.run_batch()
    assert outcome.handled == 2
    assert await effects(with_effects) == sorted([early[0].position, late[0].position])
    rows = await with_effects.fetch("SELECT type FROM effects ORDER BY position")
    assert [r["type"] for r in rows] == ["Early", "Late"]


async def test_competing_processes_process_each_event_exactly_once(
    database_url: str, with_effects: asyncpg.Pool
) -> None:
    total = 300
    pools = [await create_pool(database_url) for _ in range(3)]
    subs = [
        Subscription(EventStore(p), "shared", record_effects, batch_size=7, poll_interval=0.02)
        for p in pools
    ]
    runs = [asyncio.create_task(s.run()) for s in subs]
    writer = EventStore(pools[0])
    try:
        positions = []
        for chunk in range(10):
            positions += await append_many(writer, total // 10, stream=f"s{chunk}")
        await _until(lambda: effects(with_effects), sorted(positions), within=30)
    finally:
        for s in subs:
            s.stop()
        results = await asyncio.gather(*runs, return_exceptions=True)
        for p in pools:
            await p.close()
    assert results == [None, None, None]


async def _until(
    probe: Callable[[], Awaitable[list[int]]], expected: list[int], within: float = 10
) -> None:
    """Polls ``probe()`` until it returns ``expected``; fails with the last value."""
    deadline = asyncio.get_running_loop().time() + within
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await probe()
        if value == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"waited {within}s for {expected}, last saw {value}")


async def test_a_horizon_that_moves_between_read_and_check_still_means_look_again_soon(
    store: EventStore, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older transaction holds an event back during the read and ends right after it: the
    batch must still report that events follow, or the reader would sleep a poll interval."""
    sub = Subscription(store, "racer", _noop_handler)
    await sub.register()
    older = await asyncpg.connect(database_url)
    await older.execute("BEGIN")
    await older.fetchval("SELECT pg_current_xact_id()")  # a write transaction: holds the horizon
    held = await store.append("s", [NewEvent("E", {})], Expect.NO_STREAM)

    original = Transaction.read_all

    async def read_then_end_older(
        self: Transaction, after: Checkpoint = LOG_START, limit: int = 1000
    ) -> list[RecordedEvent]:
        found = await original(self, after, limit)
        if not older.is_closed():
            await older.execute("COMMIT")
            await older.close()
        return found

    monkeypatch.setattr(Transaction, "read_all", read_then_end_older)
    outcome = await sub.run_batch()

    assert (outcome.handled, outcome.held_back) == (0, True)
    monkeypatch.undo()
    await wait_readable(store, [held[0].position])
    assert (await sub.run_batch()).handled == 1


async def _noop_handler(tx: Transaction, events: Sequence[RecordedEvent]) -> None:
    return None
