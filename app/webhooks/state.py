"""A subscription's state, folded from its stream, and the decisions of its commands: pure,
apart from any I/O (app/webhooks/store.py reads, decides with these, and appends)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowlog.eventstore import RecordedEvent
from flowlog.webhooks.events import (
    TYPES,
    Settings,
    WebhookCreated,
    WebhookDeleted,
    WebhookEvent,
    WebhookPaused,
    WebhookResumed,
    WebhookSecretRotated,
    WebhookUpdated,
    decode,
)
from flowlog.workflow.errors import Code, WorkflowError

ACTIVE, PAUSED, DELETED = "active", "paused", "deleted"


@dataclass(frozen=True, slots=True)
class WebhookState:
    webhook_id: str
    tenant_id: str
    settings: Settings
    state: str
    secret_version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    version: int

    def row(self) -> tuple[Any, ...]:
        """The ``webhooks`` row (its columns' order: the ``restore`` and ``rows`` queries)."""
        s = self.settings
        return (
            self.webhook_id, self.tenant_id, s.url, list(s.events),
            None if s.definitions is None else list(s.definitions),
            None if s.statuses is None else list(s.statuses), s.description, self.state,
            self.secret_version, self.created_at, self.created_by, self.updated_at,
            self.updated_by, self.version,
        )  # fmt: skip


class WebhookNotFound(WorkflowError):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(Code.WEBHOOK_NOT_FOUND, f"no webhook {webhook_id!r} here")


def evolve(
    state: WebhookState | None, event: WebhookEvent, version: int, at: datetime, actor: str
) -> WebhookState | None:
    if isinstance(event, WebhookCreated):
        settings = Settings.model_validate(event.model_dump(include=set(Settings.model_fields)))
        return WebhookState(event.webhook_id, event.tenant_id, settings, ACTIVE, 1, at, actor,
                            at, actor, version)  # fmt: skip
    if state is None:
        return None  # not a subscription's stream (it did not begin with a create)
    changes: dict[str, Any] = {"updated_at": at, "updated_by": actor, "version": version}
    if isinstance(event, WebhookUpdated):
        changes["settings"] = Settings.model_validate(
            event.model_dump(include=set(Settings.model_fields))
        )
    elif isinstance(event, WebhookPaused):
        changes["state"] = PAUSED
    elif isinstance(event, WebhookResumed):
        changes["state"] = ACTIVE
    elif isinstance(event, WebhookDeleted):
        changes["state"] = DELETED
    elif isinstance(event, WebhookSecretRotated):
        changes["secret_version"] = event.secret_version
    return dataclasses.replace(state, **changes)


def fold(recorded: Sequence[RecordedEvent]) -> WebhookState | None:
    """The subscription its stream's events make. An event of a type this version does not
    know (a later release's) changes nothing but the version, so that the next append still
    expects the stream's head and a rebuild still writes the row the appends wrote."""
    state: WebhookState | None = None
    for event in recorded:
        if event.type not in TYPES:
            if state is not None:
                state = dataclasses.replace(state, version=event.version)
            continue
        actor = str(event.metadata.get("actor", "system"))
        state = evolve(state, decode(event.type, dict(event.data)), event.version,
                       event.recorded_at, actor)  # fmt: skip
    return state


def visible(state: WebhookState | None, webhook_id: str, tenant: str | None) -> WebhookState:
    """The subscription, if it exists for a caller of ``tenant`` (None: every tenant): another
    tenant's, and a deleted one, do not."""
    if state is None or state.state == DELETED:
        raise WebhookNotFound(webhook_id)
    if tenant is not None and state.tenant_id != tenant:
        raise WebhookNotFound(webhook_id)
    return state


def update(state: WebhookState, changes: Mapping[str, Any]) -> list[WebhookEvent]:
    """The settings named in ``changes`` changed, the others as they are."""
    settings = Settings.model_validate({**state.settings.model_dump(), **changes})
    if settings == state.settings:
        return []
    return [WebhookUpdated(**settings.model_dump())]


def pause(state: WebhookState) -> list[WebhookEvent]:
    return [] if state.state == PAUSED else [WebhookPaused()]


def resume(state: WebhookState) -> list[WebhookEvent]:
    return [] if state.state == ACTIVE else [WebhookResumed()]


def delete(state: WebhookState) -> list[WebhookEvent]:
    return [WebhookDeleted()]


def rotate(state: WebhookState) -> list[WebhookEvent]:
    return [WebhookSecretRotated(secret_version=state.secret_version + 1)]
