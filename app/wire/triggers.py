"""CloudEvents in on the wire: an event rule's create and change, what the service answers of
a rule, of an event it received, and of a list of either (docs/events.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from flowlog.wire.base import ContextKey, JsonValue, Request, Response

EventType = Annotated[str, Field(min_length=1, max_length=256)]
Source = Annotated[str, Field(min_length=1, max_length=256)]
FlowName = Annotated[str, Field(min_length=1, max_length=200)]
BizIdTemplate = Annotated[str, Field(min_length=1, max_length=1000)]
"""``{{data.clusterId}}``: rendered from each event (the flow's bizId takes 200 at most)."""
Description = Annotated[str, Field(max_length=1000)]


class RuleCreate(Request):
    type: EventType
    """The events' type (exactly)."""
    source: Source | None = None
    """Only events from this source (exactly); none: any source."""
    flowName: FlowName
    bizId: BizIdTemplate
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    """The flow's context; its strings are templates (``{{data.x}}``, ``{{subject}}``)."""
    description: Description = ""


class RuleUpdate(Request):
    """The settings to change (those given; ``source: null`` matches any source again)."""

    type: EventType | None = None
    source: Source | None = None
    flowName: FlowName | None = None
    bizId: BizIdTemplate | None = None
    context: dict[ContextKey, JsonValue] | None = None
    description: Description | None = None


class RuleListQuery(Request):
    type: EventType | None = None
    cursor: str = Field("", max_length=200)
    """The ``nextCursor`` of the page before."""
    pageSize: int = Field(50, ge=1, le=200)


class RuleInfo(Response):
    id: str
    tenantId: str
    type: str
    source: str | None
    flowName: str
    bizId: str
    context: dict[str, JsonValue]
    description: str
    createdAt: datetime
    createdBy: str
    updatedAt: datetime
    updatedBy: str
    version: int


class RuleList(Response):
    rules: list[RuleInfo]
    nextCursor: str | None


class RuleRefusal(Response):
    rule: str
    """The rule's id."""
    reason: str


class EventAnswer(Response):
    """What ``POST /api/v1/events`` answers (202), and again for the same event."""

    id: str
    source: str
    matched: bool
    """Whether any rule of the tenant matched the event."""
    flows: list[str]
    """The flows it started (created and started with the event's record)."""
    refused: list[RuleRefusal]
    """Matching rules that started no flow, and why."""
    duplicate: bool
    """The same source and id were received within 24 h: this is the first answer again,
    and nothing was started."""
    completed: list[str] = Field(default_factory=list)
    """Flows whose callback node waiting for this event it completed."""


class EventListQuery(Request):
    matched: bool | None = None
    type: EventType | None = None
    after: str = Field("", max_length=40)
    """The ``nextCursor`` of the page before (events older than it)."""
    pageSize: int = Field(50, ge=1, le=200)


class ReceivedEventInfo(Response):
    id: str
    source: str
    type: str
    subject: str | None
    time: datetime | None
    receivedAt: datetime
    position: int
    """Its record's place in the log."""
    matched: bool
    rules: list[str]
    flows: list[str]
    refused: int
    """How many matching rules started no flow (the reasons are in its record)."""


class EventList(Response):
    events: list[ReceivedEventInfo]
    nextCursor: str | None
