"""A subscription's deliveries on the wire: the list (pending or dead letters), a resend of
dead letters, a replay of the log from a position or a time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from flowlog.wire.base import JSON_NUMBER, IsoDatetime, Request, Response

MAX_RESEND = 1000
Position = Annotated[int, Field(ge=1, le=2**63 - 1), JSON_NUMBER]


class DeliveryListQuery(Request):
    state: Literal["dead", "pending"] = "dead"
    after: int = Field(0, ge=0, le=2**63 - 1)
    """Deliveries after this log position (the last one of the page before)."""
    limit: int = Field(50, ge=1, le=500)


class DeliveryInfo(Response):
    position: int
    """The event's log position; with the subscription, its ``webhook-id``."""
    webhookMessageId: str
    flowId: str
    type: str
    status: str | None
    """The flow's status after the event."""
    state: Literal["pending", "dead"]
    attempts: int
    enqueuedAt: datetime
    firstFailedAt: datetime | None
    lastAttemptAt: datetime | None
    lastStatus: int | None
    """The receiver's HTTP status at the last attempt (none: no answer)."""
    lastAnswer: str | None
    """The first KB of its answer, or what went wrong."""
    deadAt: datetime | None


class DeliveryList(Response):
    deliveries: list[DeliveryInfo]
    nextAfter: int | None
    """``after`` for the next page; none: this was the last."""


class Resend(Request):
    positions: list[Position] | None = Field(None, min_length=1, max_length=MAX_RESEND)
    """Dead letters to send again, by position; none: every dead letter of the subscription."""


class Resent(Response):
    positions: list[int]
    """The dead letters made pending again (sent again in their flows' lanes)."""


class Replay(Request):
    """Exactly one of the two (else 400, 40148)."""

    fromPosition: Position | None = None
    fromTime: IsoDatetime | None = None


class Replayed(Response):
    startPosition: int | None
    """The first event the subscription reads again; none when its cursor was already
    before it (the replay changed nothing)."""
    cursor: str
    """The cursor's place in the log after the replay (``transaction_id/position``)."""
