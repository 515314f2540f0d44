"""A tenant keeps at most MAX_PER_TENANT subscriptions: each is a cursor every delivering
process follows through the log."""

from __future__ import annotations

import asyncpg
import pytest

from flowlog.eventstore import EventStore
from flowlog.webhooks.events import Settings, new_id
from flowlog.webhooks.store import MAX_PER_TENANT, WebhookStore
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError

ADMIN = Caller(actor="key:admin")
SETTINGS = Settings(url="https://hooks.example.com/in", events=("FlowFailed",))


async def test_a_tenant_keeps_a_bounded_number_of_subscriptions(pool: asyncpg.Pool) -> None:
    store = WebhookStore(EventStore(pool))
    made = [await store.create(new_id(), "acme", SETTINGS, ADMIN) for _ in range(MAX_PER_TENANT)]
    with pytest.raises(WorkflowError) as refused:
        await store.create(new_id(), "acme", SETTINGS, ADMIN)
    assert refused.value.code == Code.BAD_INPUT
    assert str(MAX_PER_TENANT) in str(refused.value)
    # Another tenant is not held by acme's; a deleted subscription makes room again.
    await store.create(new_id(), "globex", SETTINGS, ADMIN)
    await store.delete(made[0].webhook_id, tenant="acme", caller=ADMIN)
    await store.create(new_id(), "acme", SETTINGS, ADMIN)
    count = await pool.fetchval("SELECT count(*) FROM webhooks WHERE tenant_id = 'acme'")
    assert count == MAX_PER_TENANT + 1  # the deleted one stays, as its stream does
