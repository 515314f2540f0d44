"""Webhook subscriptions on the wire: a create, a change, and what the service answers of a
subscription (its secret only in the create's and a rotation's answers)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from flowlog.wire.base import Request, Response
from flowlog.wire.flows import FlowStatusName

FlowEventName = Literal[
    "FlowCreated", "ContextSet", "FlowStarted", "FlowStopped", "FlowResumed", "CancelRequested",
    "FlowCanceled", "FlowRetried", "NodeStarted", "NodeOperationSubmitted", "NodeWaiting",
    "CallbackReceived", "NodeSucceeded", "NodeFailed", "FlowFinished", "FlowFailed",
    "FlowArchived", "FlowRestored", "ChildrenStarted", "ChildrenEnded", "ChildrenCommanded",
    "FlowMigrated",
]  # fmt: skip
"""The flow events a subscription may ask for (app/workflow/events.py's ``EVENT_TYPES``,
spelled out so that clients need not load the engine; a test holds them equal)."""

WEBHOOK_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
"""A subscription's id: a version 4 UUID, as flowlog makes them (anything else is 400)."""
MAX_EVENTS = 32
MAX_DEFINITIONS = 100
MAX_URL = 2048

Url = Annotated[str, Field(min_length=1, max_length=MAX_URL)]
Events = Annotated[list[FlowEventName], Field(min_length=1, max_length=MAX_EVENTS)]
Definitions = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=MAX_DEFINITIONS)
]
Statuses = Annotated[list[FlowStatusName], Field(min_length=1, max_length=7)]
Description = Annotated[str, Field(max_length=500)]


def _distinct(values: list[str] | None, what: str) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"{what}: each name once")
    return values


class WebhookCreate(Request):
    url: Url
    """Where deliveries are POSTed: http(s), a public address unless FLOWLOG_WEBHOOK_ALLOW
    lists it (docs/webhooks.md, "Where webhooks may go")."""
    events: Events
    """The flow event types delivered, each once."""
    definitions: Definitions | None = None
    """Only flows of these definitions (none: any)."""
    statuses: Statuses | None = None
    """Only events after which the flow has one of these statuses (none: any)."""
    description: Description = ""

    @field_validator("events", "definitions", "statuses")
    @classmethod
    def _each_once(cls, values: list[str] | None) -> list[str] | None:
        return _distinct(values, "names")


class WebhookUpdate(Request):
    """The settings to change; those not sent stay (``null`` for definitions or statuses:
    any)."""

    url: Url | None = None
    events: Events | None = None
    definitions: Definitions | None = None
    statuses: Statuses | None = None
    description: Description | None = None

    @field_validator("events", "definitions", "statuses")
    @classmethod
    def _each_once(cls, values: list[str] | None) -> list[str] | None:
        return _distinct(values, "names")

    @model_validator(mode="after")
    def _something(self) -> WebhookUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one setting to change")
        for name in ("url", "events", "description"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name}: cannot be null")
        return self


class WebhookChange(Request):
    reason: str = Field("", max_length=1000)
    """Recorded with the event."""


class WebhookListQuery(Request):
    cursor: str = Field("", max_length=200)
    """The ``nextCursor`` of the page before."""
    pageSize: int = Field(50, ge=1, le=200)


class WebhookInfo(Response):
    id: str
    tenant: str
    url: str
    events: list[str]
    definitions: list[str] | None
    statuses: list[str] | None
    description: str
    state: Literal["active", "paused", "deleted"]
    secretVersion: int
    createdAt: datetime
    createdBy: str
    updatedAt: datetime
    updatedBy: str
    version: int
    """The subscription stream's version."""


class WebhookWithSecret(WebhookInfo):
    secret: str
    """``whsec_<base64>``: shown in the create's answer and a rotation's only (the same again
    for a request sent again with its Idempotency-Key); the service derives it, never stores
    it."""


class WebhookDelivery(Response):
    registered: bool
    """Whether the subscription's cursor is in the log's subscriptions."""
    lagEvents: int
    """Events in the log after the cursor (counted up to ``lagCapped``)."""
    lagCapped: bool
    """The count stopped at its cap (10,000 here): at least that many."""
    lagSeconds: float | None
    """The age of the oldest event after the cursor; none: caught up."""
    pending: int
    oldestPendingSeconds: float | None
    dead: int
    """Dead letters kept (``GET /api/v1/webhooks/{id}/deliveries?state=dead``)."""
    delivered: int
    failedAttempts: int
    lastDeliveredAt: datetime | None
    lastFailedAt: datetime | None
    lastStatus: int | None
    lastAnswer: str | None
    failing: bool
    """A delivery was dead-lettered, and none succeeded since."""


class WebhookDetail(WebhookInfo):
    delivery: WebhookDelivery


class WebhookList(Response):
    webhooks: list[WebhookInfo]
    nextCursor: str | None
