"""Subscriptions for the delivery tests, made by SQL as H1's store will make them (the row in
``webhooks`` and the cursor at the log's "now"); the integrator swaps this for that store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from flowlog.webhooks.signing import secret_message, secret_text
from flowlog.workflow.callbacks import CallbackTokens

_INSERT = """
INSERT INTO webhooks (id, tenant_id, url, events, definitions, statuses, state, created_at,
                      created_by, updated_at, updated_by, stream_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, now(), 'test', now(), 'test', 1)
"""
_CURSOR = """
INSERT INTO subscriptions (name, transaction_id, position)
VALUES ('webhook-' || $1, pg_snapshot_xmin(pg_current_snapshot()), 0)
"""


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
    webhook_id = "wh_" + uuid.uuid4().hex[:16]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_INSERT, webhook_id, tenant, url, list(events),
                           None if definitions is None else list(definitions),
                           None if statuses is None else list(statuses), state)  # fmt: skip
        await conn.execute(_CURSOR, webhook_id)
    await pool.execute("SELECT pg_notify('flowlog_webhooks', $1)", webhook_id)
    return webhook_id


async def set_state(pool: asyncpg.Pool, webhook_id: str, state: str) -> None:
    await pool.execute("UPDATE webhooks SET state = $2 WHERE id = $1", webhook_id, state)
    await pool.execute("SELECT pg_notify('flowlog_webhooks', $1)", webhook_id)


async def secret(pool: asyncpg.Pool, webhook_id: str, secret_version: int = 1) -> str:
    """The subscription's secret as its receiver configures it."""
    key = await CallbackTokens(pool).mac(secret_message(webhook_id, secret_version))
    return secret_text(key)
