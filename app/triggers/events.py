"""The events of CloudEvents in: a rule's stream (``rule-<id>``: created, updated, deleted)
and a received event's (``cloudevent-<uuid5 of tenant, source, id>``: one CloudEventReceived
per acceptance). Who acted is each event's ``metadata.actor``, as for every event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

RULE_STREAM: Final = "rule-"
EVENT_STREAM: Final = "cloudevent-"
_IDS: Final = uuid.UUID("6f0d3c53-0a8e-4c0e-9f4e-3b1c5e7a2d10")
"""The namespace of the ids derived here (received events' streams, their flows, rules made
under an Idempotency-Key)."""


def rule_stream(rule_id: str) -> str:
    return RULE_STREAM + rule_id


def event_stream(tenant: str, source: str, event_id: str) -> str:
    """One stream per tenant, source and id: the same event sent twice meets its own stream."""
    return EVENT_STREAM + str(uuid.uuid5(_IDS, f"{tenant}\x00{source}\x00{event_id}"))


def flow_id_for(stream_id: str, version: int, rule_id: str) -> str:
    """The flow a rule starts for one acceptance of an event: the same in every process, so
    that an acceptance can start it once only."""
    return str(uuid.uuid5(_IDS, f"{stream_id}\x00{version}\x00{rule_id}"))


def derived_rule_id(tenant: str, actor: str, key: str) -> str:
    """A rule's id made from the caller's Idempotency-Key: the same request again meets it."""
    return str(uuid.uuid5(_IDS, f"rule\x00{tenant}\x00{actor}\x00{key}"))


class TriggerEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleSettings(BaseModel):
    """What a rule says (recorded whole by its create and each update)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    source: str | None = None
    flowName: str
    bizId: str
    context: dict[str, Any] = Field(default_factory=dict)
    description: str = ""


class RuleCreated(TriggerEvent):
    type: Literal["RuleCreated"] = "RuleCreated"
    rule_id: str
    tenant_id: str
    settings: RuleSettings


class RuleUpdated(TriggerEvent):
    type: Literal["RuleUpdated"] = "RuleUpdated"
    settings: RuleSettings


class RuleDeleted(TriggerEvent):
    type: Literal["RuleDeleted"] = "RuleDeleted"


class Refusal(BaseModel):
    """A matching rule that started no flow for the event, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    reason: str


class CloudEventReceived(TriggerEvent):
    """An event accepted: its attributes and data, the rules it matched, the flows they
    started (in this event's own transaction) and the rules that started none."""

    type: Literal["CloudEventReceived"] = "CloudEventReceived"
    tenant_id: str
    event_id: str
    source: str
    event_type: str
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    data: Any = None
    extensions: dict[str, Any] = Field(default_factory=dict)
    rules: list[str] = Field(default_factory=list)
    flows: list[str] = Field(default_factory=list)
    refused: list[Refusal] = Field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.rules)


_Event = Annotated[
    RuleCreated | RuleUpdated | RuleDeleted | CloudEventReceived, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[_Event] = TypeAdapter(_Event)


def encode(event: TriggerEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"type"})


def decode(event_type: str, data: dict[str, Any]) -> TriggerEvent:
    return _ADAPTER.validate_python({**data, "type": event_type})
