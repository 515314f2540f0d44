"""The console's webhook pages: every subscription with how its delivery is doing (cursor lag,
last delivery, failures) and a create form; one subscription with its dead letters, re-send
and replay. Every action goes through the REST API (app/api/webhooks.py, and delivery's
routes) with the session's CSRF token, as the other pages' do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from aiohttp import web

from flowlog.api.common import tenant_of
from flowlog.api.webhooks import delivery_of, webhook_id_of, webhooks_of
from flowlog.console.pages import page, render
from flowlog.webhooks.state import WebhookState
from flowlog.wire.flows import FlowStatusName
from flowlog.wire.webhooks import FlowEventName, WebhookDelivery

SHOWN = 200
"""Subscriptions on the list page (newest first)."""
LIST_CAP = 1000
"""A list row counts the lag up to this (shown as "1,000+"): a page of 200 backlogged
subscriptions must not read two million events."""
DEAD_SHOWN = 200
ANSWER_SHOWN = 300
"""Characters of a receiver's last answer shown in a table (the rest on hover is not given:
an answer can be 64 KB of anything)."""

EVENT_NAMES: tuple[str, ...] = get_args(FlowEventName)
STATUS_NAMES: tuple[str, ...] = get_args(FlowStatusName)


@dataclass(frozen=True, slots=True)
class Shown:
    """A subscription as its row on the page shows it."""

    state: WebhookState
    delivery: WebhookDelivery


def clipped(text: str | None, limit: int = ANSWER_SHOWN) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[:limit] + "…"


@page
async def webhooks_page(request: web.Request) -> web.StreamResponse:
    store = webhooks_of(request)
    states = await store.listed(tenant_of(request), None, SHOWN)
    shown = [Shown(s, delivery_of(await store.delivery(s.webhook_id, LIST_CAP))) for s in states]
    values: dict[str, Any] = {
        "shown": shown, "nav": "webhooks", "event_names": EVENT_NAMES,
        "status_names": STATUS_NAMES, "clipped": clipped, "more": len(states) == SHOWN,
    }  # fmt: skip
    return render(request, "webhooks.html.j2", values)


@page
async def webhook_page(request: web.Request) -> web.StreamResponse:
    store = webhooks_of(request)
    webhook_id = webhook_id_of(request.match_info["webhook_id"])
    state = await store.get(webhook_id, tenant_of(request))
    delivery = delivery_of(await store.delivery(webhook_id))
    dead = await store.dead_letters(webhook_id, DEAD_SHOWN)
    values: dict[str, Any] = {
        "s": state, "delivery": delivery, "dead": [_dead(row) for row in dead],
        "nav": "webhooks", "clipped": clipped,
    }  # fmt: skip
    return render(request, "webhook.html.j2", values)


def _dead(row: Any) -> dict[str, Any]:
    stream = str(row["stream_id"])
    return {**dict(row), "flow_id": stream.removeprefix("flow-") if stream.startswith("flow-")
            else None}  # fmt: skip
