"""The webhook subscription routes: ``/api/v1/webhooks`` (create, list, get, change, pause,
resume, delete, rotate the secret). A tenant sees only its own; another tenant's subscription,
and a deleted one, are 404 (docs/webhooks.md)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
from aiohttp import web

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import caller_of, tenant_of
from flowlog.api.context import context_of
from flowlog.api.operations import Api, Paged
from flowlog.webhooks.events import Settings, is_webhook_id, new_id
from flowlog.webhooks.signing import secret_text
from flowlog.webhooks.state import WebhookState
from flowlog.webhooks.store import WebhookStore
from flowlog.webhooks.urls import BadWebhookUrl, check_url
from flowlog.wire.envelope import Page
from flowlog.wire.webhooks import (
    WebhookChange,
    WebhookCreate,
    WebhookDelivery,
    WebhookDetail,
    WebhookInfo,
    WebhookList,
    WebhookListQuery,
    WebhookUpdate,
    WebhookWithSecret,
)
from flowlog.workflow.errors import Code, WorkflowError

api = Api()
WEBHOOKS = ("webhooks",)
PATH = "/api/v1/webhooks"
ONE = PATH + "/{webhookId}"


def webhooks_of(request: web.Request) -> WebhookStore:
    engine = request.app[keys.ENGINE]
    return WebhookStore(engine.service.store, engine.service.tokens)


def info(state: WebhookState) -> WebhookInfo:
    s = state.settings
    return WebhookInfo(
        id=state.webhook_id, tenant=state.tenant_id, url=s.url, events=list(s.events),
        definitions=None if s.definitions is None else list(s.definitions),
        statuses=None if s.statuses is None else list(s.statuses), description=s.description,
        state=state.state, secretVersion=state.secret_version,
        createdAt=state.created_at, createdBy=state.created_by, updatedAt=state.updated_at,
        updatedBy=state.updated_by, version=state.version,
    )  # fmt: skip


def delivery_of(r: asyncpg.Record) -> WebhookDelivery:
    """What the ``delivery`` query read, on the wire."""
    return WebhookDelivery(
        registered=r["registered"], lagEvents=r["lag_events"],
        lagCapped=r["lag_events"] >= r["cap"], lagSeconds=r["lag_seconds"], pending=r["pending"],
        oldestPendingSeconds=r["oldest_pending_seconds"], dead=r["dead"],
        delivered=r["delivered"], failedAttempts=r["failed_attempts"],
        lastDeliveredAt=r["last_delivered_at"], lastFailedAt=r["last_failed_at"],
        lastStatus=r["last_status"], lastAnswer=r["last_answer"], failing=r["failing"],
    )  # fmt: skip


def webhook_id_of(text: str) -> str:
    """A path's id: one flowlog could have made, else 400 (not 404: a typo is not a missing
    subscription)."""
    if not is_webhook_id(text):
        raise WorkflowError(Code.BAD_INPUT, "webhookId: not a webhook id (a version 4 UUID)")
    return text


def checked_url(request: web.Request, url: str) -> str:
    try:
        return check_url(url, request.app[keys.SETTINGS].webhooks.allow)
    except BadWebhookUrl as exc:
        raise WorkflowError(Code.WEBHOOK_URL_REFUSED, f"url: {exc}") from None


async def _with_secret(store: WebhookStore, state: WebhookState) -> WebhookWithSecret:
    secret = secret_text(await store.secret(state))
    return WebhookWithSecret(**info(state).model_dump(), secret=secret)


@api.route(
    "POST", PATH, summary="Subscribe a URL to flow events (the secret is in this answer only)",
    body=WebhookCreate, response=WebhookWithSecret, errors=(400, 413), tags=WEBHOOKS,
    role=Role.ADMIN,
)  # fmt: skip
async def create_webhook(request: web.Request, body: WebhookCreate) -> WebhookWithSecret:
    ctx = context_of(request)
    settings = Settings(
        url=checked_url(request, body.url), events=tuple(body.events),
        definitions=None if body.definitions is None else tuple(body.definitions),
        statuses=None if body.statuses is None else tuple(body.statuses),
        description=body.description,
    )  # fmt: skip
    store = webhooks_of(request)
    state = await store.create(new_id(), ctx.tenant_id, settings, caller_of(ctx))
    return await _with_secret(store, state)


@api.route(
    "GET", PATH, summary="List webhook subscriptions (newest first; deleted ones are not listed)",
    query=WebhookListQuery, response=WebhookList, paged=True, tags=WEBHOOKS, role=Role.VIEWER,
)  # fmt: skip
async def list_webhooks(request: web.Request, query: WebhookListQuery) -> Paged:
    after = _cursor(query.cursor) if query.cursor else None
    states = await webhooks_of(request).listed(tenant_of(request), after, query.pageSize + 1)
    page = states[: query.pageSize]
    more = len(states) > query.pageSize
    next_cursor = _next(page[-1]) if more else None
    data = WebhookList(webhooks=[info(s) for s in page], nextCursor=next_cursor)
    return Paged(data, Page(page=1, pageSize=query.pageSize, total=len(page)))


@api.route(
    "GET", ONE, summary="A webhook subscription and how its delivery is doing (cursor lag, "
    "pending, dead letters, last answer)", response=WebhookDetail, errors=(400, 404),
    tags=WEBHOOKS, role=Role.VIEWER,
)  # fmt: skip
async def get_webhook(request: web.Request, webhookId: str) -> WebhookDetail:
    store = webhooks_of(request)
    state = await store.get(webhook_id_of(webhookId), tenant_of(request))
    delivery = delivery_of(await store.delivery(state.webhook_id))
    return WebhookDetail(**info(state).model_dump(), delivery=delivery)


@api.route(
    "PATCH", ONE, summary="Change a webhook subscription's URL, events, filters or description "
    "(what is not sent stays)", body=WebhookUpdate, response=WebhookInfo,
    errors=(400, 404, 413), tags=WEBHOOKS, role=Role.ADMIN,
)  # fmt: skip
async def update_webhook(request: web.Request, webhookId: str, body: WebhookUpdate) -> WebhookInfo:
    webhook_id = webhook_id_of(webhookId)
    if body.url is not None:
        checked_url(request, body.url)
    changes = body.model_dump(include=body.model_fields_set)
    state = await webhooks_of(request).update(
        webhook_id, changes, tenant=tenant_of(request), caller=caller_of(context_of(request))
    )
    return info(state)


Command = Callable[..., Awaitable[WebhookState]]


async def _change(request: web.Request, webhook_id: str, reason: str,
                  command: Callable[[WebhookStore], Command]) -> WebhookState:  # fmt: skip
    store = webhooks_of(request)
    caller = caller_of(context_of(request), reason)
    return await command(store)(webhook_id_of(webhook_id), tenant=tenant_of(request),
                                caller=caller)  # fmt: skip


@api.route(
    "POST", ONE + "/pause", summary="Pause a webhook subscription: nothing is delivered until "
    "it is resumed (its cursor waits; nothing is lost)", body=WebhookChange,
    response=WebhookInfo, errors=(400, 404, 413), tags=WEBHOOKS, role=Role.ADMIN,
)  # fmt: skip
async def pause_webhook(request: web.Request, webhookId: str, body: WebhookChange) -> WebhookInfo:
    return info(await _change(request, webhookId, body.reason, lambda s: s.pause))


@api.route(
    "POST", ONE + "/resume", summary="Resume a paused webhook subscription (it delivers from "
    "where its cursor stopped)", body=WebhookChange, response=WebhookInfo,
    errors=(400, 404, 413), tags=WEBHOOKS, role=Role.ADMIN,
)  # fmt: skip
async def resume_webhook(request: web.Request, webhookId: str, body: WebhookChange) -> WebhookInfo:
    return info(await _change(request, webhookId, body.reason, lambda s: s.resume))


@api.route(
    "DELETE", ONE, summary="Delete a webhook subscription (its history stays in the log)",
    query=WebhookChange, response=WebhookInfo, errors=(400, 404), tags=WEBHOOKS,
    role=Role.ADMIN,
)  # fmt: skip
async def delete_webhook(request: web.Request, webhookId: str, query: WebhookChange) -> WebhookInfo:
    return info(await _change(request, webhookId, query.reason, lambda s: s.delete))


@api.route(
    "POST", ONE + "/secret", summary="Rotate a webhook subscription's secret (the new one is in "
    "this answer only; deliveries are signed with it from now on)", body=WebhookChange,
    response=WebhookWithSecret, errors=(400, 404, 413), tags=WEBHOOKS, role=Role.ADMIN,
)  # fmt: skip
async def rotate_webhook_secret(
    request: web.Request, webhookId: str, body: WebhookChange
) -> WebhookWithSecret:
    state = await _change(request, webhookId, body.reason, lambda s: s.rotate)
    return await _with_secret(webhooks_of(request), state)


def _next(state: WebhookState) -> str:
    text = f"{state.created_at.isoformat()}|{state.webhook_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def _cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, webhook_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        moment = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeError):
        raise WorkflowError(Code.BAD_INPUT, "cursor: not a cursor this list gave") from None
    if moment.tzinfo is None or not is_webhook_id(webhook_id):
        raise WorkflowError(Code.BAD_INPUT, "cursor: not a cursor this list gave")
    return moment, webhook_id
