"""The deliveries' routes: dead letters listed with the receiver's answer and sent again, the
log replayed from a position or a time (duplicates with the same webhook-id), idempotent
POSTs, and nothing of another tenant's subscription (404)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flowlog.config import Settings
from flowlog.roles import DatabaseUrls
from flowlog.web import create_app
from flowlog.webhooks.settings import WebhookSettings
from flowlog.workflow.definition import Registry
from flowlog.workflow.errors import Code
from tests.api.conftest import TOKENS
from tests.api.helpers import A, B, ok, refused
from tests.helpers import eventually, wait_until
from tests.webhooks.delivering import DEFINITIONS, LOCAL, StartDelivering
from tests.webhooks.receiver import Receiver
from tests.webhooks.rows import subscribe

Client = TestClient[web.Request, web.Application]
TENANT = "tenant-a"


@pytest.fixture
async def client(database_url: str, runtime_url: str) -> AsyncIterator[Client]:
    """The API with tokens of two tenants, without a reactor (the engines of the test
    deliver)."""
    settings = Settings.from_env({}).model_copy(
        update={"tokens": TOKENS, "run_reactor": False, "pool_size": 4}
    )
    app = create_app(settings, DatabaseUrls(runtime_url, database_url), Registry(DEFINITIONS))
    made = TestClient(TestServer(app))
    await made.start_server()
    yield made
    await made.close()


async def _not(value: Awaitable[object]) -> bool:
    return not await value


def path(hook: str, rest: str) -> str:
    return f"/api/v1/webhooks/{hook}/{rest}"


async def _dead(pool: asyncpg.Pool, hook: str) -> int:
    return int(await pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1 AND state = 'dead'", hook
    ))  # fmt: skip


async def test_dead_letters_are_listed_with_their_answer_and_sent_again(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver, client: Client
) -> None:
    brief = WebhookSettings(allow=LOCAL.allow, retry_seconds=0.3, timeout=2.0)
    engine = await delivering(brief)
    hook = await subscribe(pool, tenant=TENANT, url=receiver.url, events=["FlowFailed"])
    receiver.status = 500
    flows = [await engine.service.create(f"b{n}", "d", "failing", start=True, tenant_id=TENANT)
             for n in range(3)]  # fmt: skip
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while await _dead(pool, hook) < 3:
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    tries = len(receiver.received)
    assert tries >= 6  # retried before it was dead-lettered
    status_of = "SELECT failing, dead, delivered FROM webhook_status WHERE webhook_id = $1"

    async def reported() -> bool:  # each sender reports its outcomes every second
        status = await pool.fetchrow(status_of, hook)
        return status is not None and tuple(status) == (True, 3, 0)

    await eventually(reported, what="the subscription marked failing")

    listed = await ok(await client.get(path(hook, "deliveries"), headers=A))
    letters = listed["deliveries"]
    assert sorted(d["flowId"] for d in letters) == sorted(f.flow_id for f in flows)
    assert [d["position"] for d in letters] == sorted(d["position"] for d in letters)
    assert all(d["state"] == "dead" and d["lastStatus"] == 500 and d["lastAnswer"] == "thanks"
               for d in letters)  # fmt: skip
    page = await ok(await client.get(path(hook, "deliveries?limit=2"), headers=A))
    assert len(page["deliveries"]) == 2
    rest = await ok(await client.get(
        path(hook, f"deliveries?limit=2&after={page['nextAfter']}"), headers=A))  # fmt: skip
    assert [d["position"] for d in rest["deliveries"]] == [letters[2]["position"]]

    # Another tenant sees nothing of it, and cannot resend or replay it.
    for answer in (
        await client.get(path(hook, "deliveries"), headers=B),
        await client.post(path(hook, "deliveries/resend"), json={}, headers=B),
        await client.post(path(hook, "replay"), json={"fromPosition": 1}, headers=B),
        await client.get(path(str(uuid.uuid4()), "deliveries"), headers=A),
    ):
        await refused(answer, 404, Code.WEBHOOK_NOT_FOUND)
    # What flowlog cannot have made is bad input, as for the subscription's own routes.
    for bad_id in ("wh_nothing", "x" * 300):
        for answer in (
            await client.get(path(bad_id, "deliveries"), headers=A),
            await client.post(path(bad_id, "deliveries/resend"), json={}, headers=A),
            await client.post(path(bad_id, "replay"), json={"fromPosition": 1}, headers=A),
        ):
            await refused(answer, 400, Code.BAD_INPUT)
    # A position that is not a dead letter: nothing is sent again.
    await refused(await client.post(path(hook, "deliveries/resend"),
                                    json={"positions": [letters[0]["position"], 1]}, headers=A),
                  404, Code.DELIVERY_NOT_FOUND)  # fmt: skip
    assert await _dead(pool, hook) == 3
    for bad in ({"positions": []}, {"positions": list(range(1, 1002))}, {"positions": ["1"]},
                {"positions": [0]}, {"everything": True}):  # fmt: skip
        await refused(await client.post(path(hook, "deliveries/resend"), json=bad, headers=A),
                      400, Code.BAD_INPUT)  # fmt: skip

    receiver.status = 200
    first = letters[0]["position"]
    key = {**A, "Idempotency-Key": "resend-1"}
    resent = await ok(await client.post(path(hook, "deliveries/resend"),
                                        json={"positions": [first]}, headers=key))  # fmt: skip
    assert resent == {"positions": [first]}
    await wait_until(lambda: len(receiver.received) > tries, what="the resend")
    # Sent again with its key: the same answer, nothing more re-sent.
    again = await ok(await client.post(path(hook, "deliveries/resend"),
                                       json={"positions": [first]}, headers=key))  # fmt: skip
    assert again == resent
    await refused(await client.post(path(hook, "deliveries/resend"), json={}, headers=key),
                  422, Code.IDEMPOTENCY_REUSED)  # fmt: skip
    everything = await ok(await client.post(path(hook, "deliveries/resend"), json={}, headers=A))
    assert everything == {"positions": [d["position"] for d in letters[1:]]}
    await wait_until(lambda: {r.msg_id for r in receiver.received[tries:]} ==
                     {d["webhookMessageId"] for d in letters}, what="every resend")  # fmt: skip
    failing = "SELECT failing FROM webhook_status WHERE webhook_id = $1"
    await eventually(lambda: _not(pool.fetchval(failing, hook)), what="failing cleared")
    recorded = await pool.fetch(
        "SELECT type, data, metadata FROM events WHERE stream_id = $1 ORDER BY version",
        f"webhook-replays-{hook}",
    )
    assert [r["type"] for r in recorded] == ["DeliveriesResent", "DeliveriesResent"]
    assert recorded[0]["metadata"]["actor"]
    assert recorded[0]["data"]["positions"] == [first]


async def test_a_replay_by_position_or_time_delivers_again_with_the_same_ids(
    pool: asyncpg.Pool, delivering: StartDelivering, receiver: Receiver, client: Client
) -> None:
    engine = await delivering()
    hook = await subscribe(pool, tenant=TENANT, url=receiver.url,
                           events=["FlowCreated", "FlowFinished"])  # fmt: skip
    theirs = await subscribe(pool, tenant="tenant-b", url=receiver.url, events=["FlowCreated"])
    before = datetime.now(UTC)
    flows = [await engine.service.create(f"b{n}", "d", "passing", start=True, tenant_id=TENANT)
             for n in range(3)]  # fmt: skip
    await wait_until(lambda: len(receiver.received) == 6, what="the first deliveries")
    first_ids = [r.msg_id for r in receiver.received]
    second = await pool.fetchval(
        "SELECT position FROM events WHERE stream_id = $1 AND version = 1",
        f"flow-{flows[1].flow_id}",
    )
    key = {**A, "Idempotency-Key": "replay-1"}
    replayed = await ok(await client.post(path(hook, "replay"), json={"fromPosition": second},
                                          headers=key))  # fmt: skip
    assert replayed["startPosition"] == second
    # Every delivered event from there on in the log, again, with the same webhook-ids.
    expected = sorted(i for i in first_ids if int(i.rsplit("_", 1)[1]) >= second)
    assert len(expected) >= 4
    await wait_until(lambda: len(receiver.received) >= 6 + len(expected), what="the replay")
    assert sorted(r.msg_id for r in receiver.received[6:]) == expected
    # The same request again is answered the same and replays nothing more.
    assert await ok(await client.post(path(hook, "replay"), json={"fromPosition": second},
                                      headers=key)) == replayed  # fmt: skip
    since = {"fromTime": before.isoformat()}
    by_time = await ok(await client.post(path(hook, "replay"), json=since, headers=A))
    assert by_time["startPosition"] is not None
    done = 6 + len(expected)
    await wait_until(lambda: len(receiver.received) >= done + 6, what="the replay by time")
    assert sorted(r.msg_id for r in receiver.received[done:]) == sorted(first_ids)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == done + 6
    assert not any(theirs in r.msg_id for r in receiver.received)

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for bad in ({}, {"fromPosition": second, "fromTime": before.isoformat()},
                {"fromTime": future}, {"fromPosition": 2**62}):  # fmt: skip
        await refused(await client.post(path(hook, "replay"), json=bad, headers=A),
                      400, Code.BAD_REPLAY_START)  # fmt: skip
    for bad in ({"fromPosition": "1"}, {"fromTime": "yesterday"}, {"fromPosition": 0},
                {"fromPosition": 1, "x": 1}):  # fmt: skip
        await refused(await client.post(path(hook, "replay"), json=bad, headers=A),
                      400, Code.BAD_INPUT)  # fmt: skip
    kinds = await pool.fetchval(
        "SELECT array_agg(type ORDER BY version) FROM events WHERE stream_id = $1",
        f"webhook-replays-{hook}",
    )
    assert kinds == ["ReplayRequested", "ReplayRequested"]
