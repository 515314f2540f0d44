"""The events of a webhook subscription: each subscription is a stream ``webhook-<id>`` (made,
changed, paused, resumed, its secret rotated, deleted). Who acted is each event's
``metadata.actor``, as for every event. The secret itself is never in the log: only its
version, from which every process derives it (app/webhooks/signing.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

WEBHOOK_STREAM = "webhook-"


def webhook_stream(webhook_id: str) -> str:
    return WEBHOOK_STREAM + webhook_id


def cursor_name(webhook_id: str) -> str:
    """The eventstore subscription whose checkpoint is the webhook's cursor in the log."""
    return WEBHOOK_STREAM + webhook_id


def new_id() -> str:
    return str(uuid.uuid4())


def is_webhook_id(text: str) -> bool:
    """Whether ``text`` is an id flowlog could have made (a version 4 UUID, lower case)."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == text


class WebhookEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Settings(WebhookEvent):
    """What a subscription asks for: where, which event types, and which flows (None: any)."""

    url: str
    events: tuple[str, ...]
    definitions: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    description: str = ""


class WebhookCreated(Settings):
    type: Literal["WebhookCreated"] = "WebhookCreated"
    webhook_id: str
    tenant_id: str


class WebhookUpdated(Settings):
    """The subscription's settings after the change, whole (a fold needs no earlier event to
    know them)."""

    type: Literal["WebhookUpdated"] = "WebhookUpdated"


class WebhookPaused(WebhookEvent):
    type: Literal["WebhookPaused"] = "WebhookPaused"


class WebhookResumed(WebhookEvent):
    type: Literal["WebhookResumed"] = "WebhookResumed"


class WebhookDeleted(WebhookEvent):
    type: Literal["WebhookDeleted"] = "WebhookDeleted"


class WebhookSecretRotated(WebhookEvent):
    type: Literal["WebhookSecretRotated"] = "WebhookSecretRotated"
    secret_version: int


_Event = Annotated[
    WebhookCreated | WebhookUpdated | WebhookPaused | WebhookResumed | WebhookDeleted
    | WebhookSecretRotated,
    Field(discriminator="type"),
]  # fmt: skip
_ADAPTER: TypeAdapter[_Event] = TypeAdapter(_Event)
TYPES = frozenset(
    ("WebhookCreated", "WebhookUpdated", "WebhookPaused", "WebhookResumed", "WebhookDeleted",
     "WebhookSecretRotated")
)  # fmt: skip


def encode(event: WebhookEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"type"})


def decode(event_type: str, data: dict[str, Any]) -> WebhookEvent:
    return _ADAPTER.validate_python({**data, "type": event_type})
