"""A lane's linger: rows enqueued while the lane was reading its rows (the fan-out's poke came
before the lane lingered) are read at once, not after the linger (250 ms a delivery lost)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg

from flowlog.webhooks.sender import DeliveryTuning, Lane, Sender
from flowlog.webhooks.settings import WebhookSettings


def _sender(linger: float) -> Sender:
    # The linger decision touches neither the pool nor the tokens.
    return Sender(cast(Any, None), WebhookSettings(), cast(Any, None), "test",
                  DeliveryTuning(linger_seconds=linger))  # fmt: skip


async def _driven(sender: Sender, lane: Lane) -> asyncio.Task[None]:
    task = asyncio.create_task(asyncio.sleep(60))
    sender._driving[(lane.webhook_id, lane.stream_id)] = task  # as _pass does on a claim
    return task


async def test_a_poke_while_the_lane_reads_makes_it_read_again_at_once() -> None:
    sender = _sender(linger=5.0)
    lane = Lane("wh_1", "flow-1", "http://127.0.0.1/hook", 1)
    task = await _driven(sender, lane)
    try:
        sender.poke("wh_1", ["flow-1"])  # committed while its (empty) read was in flight
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await sender._linger(lane)
        assert loop.time() - started < 0.1
    finally:
        task.cancel()


async def test_a_poke_of_another_flow_or_subscription_does_not_stop_the_linger() -> None:
    sender = _sender(linger=0.2)
    lane = Lane("wh_1", "flow-1", "http://127.0.0.1/hook", 1)
    task = await _driven(sender, lane)
    try:
        sender.poke("wh_1", ["flow-2"])
        sender.poke("wh_2", ["flow-1"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await sender._linger(lane)  # nothing came for it: the linger runs out
        assert loop.time() - started >= 0.19
    finally:
        task.cancel()


async def test_a_poke_while_it_lingers_ends_the_linger() -> None:
    sender = _sender(linger=5.0)
    lane = Lane("wh_1", "flow-1", "http://127.0.0.1/hook", 1)
    task = await _driven(sender, lane)
    try:
        lingering = asyncio.create_task(sender._linger(lane))
        await asyncio.sleep(0.05)
        sender.poke("wh_1", ["flow-1"])
        assert await asyncio.wait_for(lingering, 1.0)
    finally:
        task.cancel()


async def test_a_sender_with_no_lanes_waits_for_its_poll(pool: asyncpg.Pool) -> None:
    # "No lane" once read as "a lane due now": an idle sender claimed back to back for ever.
    sender = Sender(pool, WebhookSettings(), cast(Any, None), "test",
                    DeliveryTuning(poll_seconds=0.7))  # fmt: skip
    assert await sender._pass() == 0.7
