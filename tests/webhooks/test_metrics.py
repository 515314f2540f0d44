"""The webhook metrics: deliveries by outcome (this process's), and each subscription's lag in
events and seconds, growing while it is paused and back to nothing once delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from flowlog.config import Settings
from flowlog.roles import DatabaseUrls
from flowlog.web import create_app
from flowlog.workflow.definition import Registry
from tests.helpers import eventually
from tests.webhooks.delivering import DEFINITIONS
from tests.webhooks.receiver import Receiver
from tests.webhooks.rows import set_state, subscribe

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(database_url: str, runtime_url: str) -> AsyncIterator[Client]:
    """A server that runs flows and delivers webhooks to 127.0.0.1."""
    settings = Settings.from_env({"FLOWLOG_WEBHOOK_ALLOW": "127.0.0.1"}).model_copy(
        update={"pool_size": 4, "lease_seconds": 2.0}
    )
    app = create_app(settings, DatabaseUrls(runtime_url, database_url), Registry(DEFINITIONS))
    made = TestClient(TestServer(app))
    await made.start_server()
    yield made
    await made.close()


async def _samples(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await (await client.get("/metrics")).text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_deliveries_are_counted_and_lag_is_measured(
    pool: asyncpg.Pool, client: Client, receiver: Receiver
) -> None:
    hook = await subscribe(pool, url=receiver.url, events=["FlowFinished"], state="paused")
    for n in range(3):
        answer = await client.post("/api/v1/workflow/", json={
            "bizId": f"b{n}", "bizType": "d", "flowName": "passing", "start": True})  # fmt: skip
        assert answer.status == 200, await answer.text()

    async def lagging() -> bool:
        samples = await _samples(client)
        events = samples.get(("flowlog_webhook_lag_events", (("webhook", hook),)), 0)
        return events >= 3 and samples[("flowlog_webhook_lag_seconds", (("webhook", hook),))] > 0

    await eventually(lagging, what="lag while paused")
    assert receiver.received == []
    await set_state(pool, hook, "active")

    async def caught_up() -> bool:
        samples = await _samples(client)
        delivered = samples.get(
            ("flowlog_webhook_deliveries_total", (("outcome", "delivered"),)), 0
        )
        lag = samples[("flowlog_webhook_lag_events", (("webhook", hook),))]
        seconds = samples[("flowlog_webhook_lag_seconds", (("webhook", hook),))]
        return delivered >= 3 and lag == 0 and seconds == 0

    await eventually(caught_up, what="the lag gone")
    assert len({r.msg_id for r in receiver.received}) == 3
