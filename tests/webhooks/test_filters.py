"""What a subscription is sent: the events of its types, of its definitions, with the
statuses it asked for; nothing while it is paused (the log keeps it), nothing once deleted."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.helpers import eventually, wait_until
from tests.webhooks.delivering import StartDelivering
from tests.webhooks.receiver import Receiver
from tests.webhooks.rows import set_state, subscribe


async def test_definitions_and_statuses_filter_what_is_sent(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    engine = await delivering()
    by_definition = await subscribe(pool, url=receiver.url, events=["FlowFailed", "FlowFinished"],
                                    definitions=["failing"])  # fmt: skip
    by_status = await subscribe(pool, url=receiver.url, events=["NodeFailed", "FlowFailed"],
                                statuses=["Error"])  # fmt: skip
    for n in range(2):
        await engine.service.create(f"f{n}", "d", "failing", start=True)
        await engine.service.create(f"p{n}", "d", "passing", start=True)
    await wait_until(lambda: len(receiver.received) >= 4, what="four deliveries")
    await asyncio.sleep(0.3)  # nothing more comes
    # webhook-id: msg_<subscription>_<position>
    sent = [(r.msg_id.removeprefix("msg_").rsplit("_", 1)[0], r.json) for r in receiver.received]
    assert len(sent) == 4
    for hook, body in sent:
        assert body["data"]["flowName"] == "failing"  # type: ignore[index]
        assert body["type"] == "FlowFailed"
        assert hook in (by_definition, by_status)
    # NodeFailed left the flow Processing (its failure path ended it): not an Error status.
    statuses = await pool.fetch(
        "SELECT DISTINCT event_type, flow_status FROM webhook_deliveries WHERE webhook_id = $1",
        by_status,
    )
    assert all(r["flow_status"] == "Error" for r in statuses)


async def test_a_paused_subscription_waits_and_a_deleted_one_forgets(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    engine = await delivering()
    paused = await subscribe(pool, url=receiver.url, events=["FlowFinished"], state="paused")
    deleted = await subscribe(pool, url=receiver.url, events=["FlowFinished"])
    receiver.status = 503  # the second one's deliveries wait for a retry
    for n in range(3):
        await engine.service.create(f"p{n}", "d", "passing", start=True)

    async def pending(hook: str) -> int:
        return int(await pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1", hook))  # fmt: skip

    await eventually(lambda: _equals(pending(deleted), 3), what="rows of the second")
    assert await pending(paused) == 0  # no fan-out while paused
    await set_state(pool, deleted, "deleted")
    await eventually(lambda: _equals(pending(deleted), 0), what="the deleted one's rows gone")
    lanes = await pool.fetchval("SELECT count(*) FROM webhook_lanes WHERE webhook_id = $1", deleted)
    assert lanes == 0
    tried = len(receiver.received)
    receiver.status = 200
    await set_state(pool, paused, "active")
    await wait_until(lambda: len(receiver.received) >= tried + 3, what="the paused one's events")
    await asyncio.sleep(0.3)
    late = receiver.received[tried:]
    assert len(late) == 3
    assert all(paused in r.msg_id for r in late)


async def _equals(value: asyncio.Future[int] | object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]
