"""Deliveries: verified Standard Webhooks requests for the events a subscription wants, with
the flow's status after each, in order per flow, and nothing of another tenant's flows."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict

import asyncpg

from flowlog.webhooks.signing import message_id
from tests.helpers import wait_until
from tests.webhooks.delivering import QUICK, StartDelivering
from tests.webhooks.receiver import Receiver
from tests.webhooks.rows import secret, subscribe


async def test_a_failed_flow_is_delivered_verified_woken_not_polled(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    # The sender looks by itself only once an hour here: a delivery at all was woken by the
    # fan-out, never found by a poll, however loaded the machine (about 0.1 s when quiet; the
    # lag itself is measured by `flowlog bench webhooks`, docs/benchmarks.md).
    engine = await delivering(tuning=dataclasses.replace(QUICK, poll_seconds=3600.0))
    hook = await subscribe(pool, url=receiver.url, events=["FlowFailed"])
    flow = await engine.service.create("b1", "demo", "failing", start=True)
    await wait_until(lambda: receiver.received, within=60, what="a delivery")
    [payload] = receiver.verified(await secret(pool, hook))
    assert payload["type"] == "FlowFailed"
    data = payload["data"]
    assert (data["flowId"], data["status"], data["tenant"]) == (flow.flow_id, "Error", "")
    assert (data["flowName"], data["bizId"], data["bizType"]) == ("failing", "b1", "demo")
    assert data["event"]["error_message"]
    position = await pool.fetchval(
        "SELECT position FROM events WHERE stream_id = $1 AND type = 'FlowFailed'",
        f"flow-{flow.flow_id}",
    )
    assert data["position"] == position
    assert receiver.received[0].msg_id == message_id(hook, position)
    # Delivered: nothing pending, no lane, counted.
    await _settled(pool, hook, delivered=1)


async def _settled(pool: asyncpg.Pool, hook: str, delivered: int) -> None:
    async def done() -> bool:
        left = await pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1", hook
        )
        lanes = await pool.fetchval(
            "SELECT count(*) FROM webhook_lanes WHERE webhook_id = $1", hook
        )
        count = await pool.fetchval(
            "SELECT delivered FROM webhook_status WHERE webhook_id = $1", hook
        )
        return left == 0 and lanes == 0 and count == delivered

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not await done():
        assert loop.time() < deadline, "deliveries did not settle"
        await asyncio.sleep(0.05)


async def test_many_flows_on_two_senders_arrive_in_order_per_flow_and_only_the_tenants(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver
) -> None:
    first = await delivering()
    await delivering()  # a second process delivering the same subscriptions
    events = ["FlowCreated", "NodeStarted", "NodeSucceeded", "FlowFinished"]
    hook = await subscribe(pool, tenant="acme", url=receiver.url, events=events)
    ours = await asyncio.gather(*(
        first.service.create(f"b{n}", "demo", "passing", start=True, tenant_id="acme")
        for n in range(30)
    ))  # fmt: skip
    theirs = await asyncio.gather(*(
        first.service.create(f"o{n}", "demo", "passing", start=True, tenant_id="other")
        for n in range(10)
    ))  # fmt: skip
    # Per flow: FlowCreated, NodeStarted, NodeSucceeded, NodeStarted, NodeSucceeded, FlowFinished.
    await wait_until(lambda: len({r.msg_id for r in receiver.received}) >= 30 * 6, within=30,
                     what="every event")  # fmt: skip
    payloads = receiver.verified(await secret(pool, hook))
    by_flow: dict[str, list[int]] = defaultdict(list)
    for payload in payloads:
        by_flow[payload["data"]["flowId"]].append(payload["data"]["streamVersion"])
    assert set(by_flow) == {f.flow_id for f in ours}
    assert not {f.flow_id for f in theirs} & set(by_flow)
    for flow_id, versions in by_flow.items():
        assert versions == sorted(versions), flow_id
    statuses = {p["type"]: p["data"]["status"] for p in payloads}
    assert statuses["FlowCreated"] == "Initializing"
    assert statuses["FlowFinished"] == "Finished"
    assert statuses["NodeStarted"] == "Processing"
