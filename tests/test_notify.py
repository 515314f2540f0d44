"""Wake-ups: the coalesced notifier and the per-process listener."""

from __future__ import annotations

import asyncio
from functools import partial

import asyncpg

from flowlog.eventstore import CHANNEL, Listener, Notifier, connect


async def _received(database_url: str) -> tuple[asyncpg.Connection, list[str]]:
    got: list[str] = []
    conn = await asyncpg.connect(database_url)
    await conn.add_listener(CHANNEL, lambda *args: got.append(args[2]))
    return conn, got


async def test_many_wakes_cost_few_notifications_and_the_last_wake_is_followed_by_one(
    pool: asyncpg.Pool, database_url: str
) -> None:
    conn, got = await _received(database_url)
    notifier = Notifier(pool, min_interval=0.05)
    notifier.start()
    try:
        for _ in range(200):
            notifier.wake()
            await asyncio.sleep(0.001)
        sent_before_last = notifier.sent
        notifier.wake()
        await asyncio.sleep(0.3)
    finally:
        await notifier.close()
        await conn.close()

    assert 1 <= notifier.sent < 40  # about 0.2 s of wakes at one send per 0.05 s
    assert notifier.sent > sent_before_last
    assert len(got) == notifier.sent


async def test_close_sends_an_owed_notification(pool: asyncpg.Pool, database_url: str) -> None:
    conn, got = await _received(database_url)
    notifier = Notifier(pool, min_interval=10)
    notifier.start()
    notifier.wake()
    await asyncio.sleep(0.1)  # first send, then a 10 s rest
    notifier.wake()
    await notifier.close()
    await asyncio.sleep(0.1)
    await conn.close()

    assert notifier.sent == 2
    assert len(got) == 2


async def test_listener_fans_out_and_survives_a_lost_connection(
    pool: asyncpg.Pool, database_url: str
) -> None:
    listener = Listener(partial(connect, database_url))
    await listener.start()
    first, second = listener.register(), listener.register()
    try:
        await pool.execute("SELECT pg_notify($1, '')", CHANNEL)
        await asyncio.wait_for(asyncio.gather(first.wait(), second.wait()), 5)
        first.clear()
        second.clear()

        # The server drops the LISTEN connection: the listener reconnects and wakes its
        # waiters, since notifications sent meanwhile are lost.
        await pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        await asyncio.wait_for(first.wait(), 10)
        assert listener.connected
        first.clear()
        listener.unregister(second)
        second.clear()
        await pool.execute("SELECT pg_notify($1, '')", CHANNEL)
        await asyncio.wait_for(first.wait(), 5)
        assert not second.is_set()
    finally:
        await listener.close()
