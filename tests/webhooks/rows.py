"""Subscriptions for the delivery tests, made by the subscriptions' own store (the stream, the
``webhooks`` row and the cursor at the log's "now"), as the REST API makes them."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from flowlog.eventstore import EventStore
from flowlog.webhooks.events import Settings, new_id
from flowlog.webhooks.signing import secret_text
from flowlog.webhooks.store import WebhookStore
from flowlog.workflow.caller import Caller

_TESTS = Caller(actor="test")


def _store(pool: asyncpg.Pool) -> WebhookStore:
    return WebhookStore(EventStore(pool))


async def subscribe(
    pool: asyncpg.Pool,
    *,
    tenant: str = "",
    url: str,
    events: Sequence[str],
    definitions: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    state: str = "active",
) -> str:
    settings = Settings(
        url=url, events=tuple(events),
        definitions=None if definitions is None else tuple(definitions),
        statuses=None if statuses is None else tuple(statuses),
    )  # fmt: skip
    made = await _store(pool).create(new_id(), tenant, settings, _TESTS)
    if state != "active":
        await set_state(pool, made.webhook_id, state)
    return made.webhook_id


async def set_state(pool: asyncpg.Pool, webhook_id: str, state: str) -> None:
    """Pauses, resumes or deletes the subscription as its admin would (the store announces it
    on ``flowlog_webhooks``)."""
    store = _store(pool)
    command = {"paused": store.pause, "active": store.resume, "deleted": store.delete}[state]
    await command(webhook_id, tenant=None, caller=_TESTS)


async def secret(pool: asyncpg.Pool, webhook_id: str, secret_version: int = 1) -> str:
    """The subscription's secret as its receiver configures it."""
    state = await _store(pool).get(webhook_id, None)
    assert state.secret_version == secret_version
    return secret_text(await _store(pool).secret(state))
