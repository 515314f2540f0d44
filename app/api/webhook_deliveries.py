"""A subscription's deliveries: the dead letters (and pending ones) with their last answer,
resending dead letters, and replaying the log from a position or a time
(docs/webhooks.md). Another tenant's subscription is not found (404), never forbidden."""

from __future__ import annotations

from aiohttp import web

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import caller_of, tenant_of
from flowlog.api.context import context_of
from flowlog.api.operations import Api
from flowlog.api.webhooks import webhook_id_of
from flowlog.eventstore import EventStore
from flowlog.webhooks.replays import DeliveryOperations
from flowlog.webhooks.signing import message_id
from flowlog.wire.webhook_deliveries import (
    DeliveryInfo,
    DeliveryList,
    DeliveryListQuery,
    Replay,
    Replayed,
    Resend,
    Resent,
)

api = Api()
PATH = "/api/v1/webhooks/{webhookId}"
TAGS = ("webhooks",)


def _operations(request: web.Request) -> DeliveryOperations:
    return DeliveryOperations(EventStore(request.app[keys.ENGINE].pool))


def _poke(request: web.Request, replayed: bool) -> None:
    deliveries = request.app[keys.ENGINE].deliveries
    if deliveries is not None:  # this process delivers: at once (the others within a second)
        if replayed:
            deliveries.changed()
        deliveries.sender.poke()


@api.route(
    "GET", PATH + "/deliveries", summary="A webhook's dead letters (or pending deliveries), "
    "with the receiver's last answer", query=DeliveryListQuery, response=DeliveryList,
    errors=(400, 404), tags=TAGS, role=Role.VIEWER,
)  # fmt: skip
async def list_deliveries(
    request: web.Request, webhookId: str, query: DeliveryListQuery
) -> DeliveryList:
    webhookId = webhook_id_of(webhookId)
    rows = await _operations(request).listed(
        webhookId, tenant_of(request), query.state, query.after, query.limit + 1
    )
    page = rows[: query.limit]
    return DeliveryList(
        deliveries=[
            DeliveryInfo(
                position=r["position"],
                webhookMessageId=message_id(webhookId, r["position"]),
                flowId=r["stream_id"].removeprefix("flow-"),
                type=r["event_type"],
                status=r["flow_status"],
                state=r["state"],
                attempts=r["attempts"],
                enqueuedAt=r["enqueued_at"],
                firstFailedAt=r["first_failed_at"],
                lastAttemptAt=r["last_attempt_at"],
                lastStatus=r["last_status"],
                lastAnswer=r["last_answer"],
                deadAt=r["dead_at"],
            )
            for r in page
        ],
        nextAfter=page[-1]["position"] if len(rows) > query.limit else None,
    )


@api.route(
    "POST", PATH + "/deliveries/resend", summary="Send dead letters again (all of them, or "
    "those named by position)", body=Resend, response=Resent, errors=(400, 404, 413, 422),
    tags=TAGS, role=Role.OPERATOR,
)  # fmt: skip
async def resend(request: web.Request, webhookId: str, body: Resend) -> Resent:
    ctx = context_of(request)
    done = await _operations(request).resend(
        webhook_id_of(webhookId),
        tenant_of(request),
        body.positions,
        caller_of(ctx),
        ctx.idempotency,
    )
    _poke(request, replayed=False)
    return Resent(positions=done.positions)


@api.route(
    "POST", PATH + "/replay", summary="Deliver the log again from a position or a time (the "
    "subscription's cursor moves back)", body=Replay, response=Replayed,
    errors=(400, 404, 413, 422), tags=TAGS, role=Role.OPERATOR,
)  # fmt: skip
async def replay(request: web.Request, webhookId: str, body: Replay) -> Replayed:
    ctx = context_of(request)
    done = await _operations(request).replay(
        webhook_id_of(webhookId), tenant_of(request), body.fromPosition, body.fromTime,
        caller_of(ctx), ctx.idempotency,
    )  # fmt: skip
    _poke(request, replayed=True)
    return Replayed(startPosition=done.start_position, cursor=done.cursor)
