"""A flow's events as its event stream sends them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowlog.wire.base import Response
from flowlog.wire.history import STREAM_ENDS

_STATUS_CHANGES = STREAM_ENDS | {
    "FlowStarted", "FlowStopped", "FlowResumed", "CancelRequested", "FlowRetried",
}  # fmt: skip


class StreamEvent(Response):
    """One event of ``GET /api/v1/workflow/{id}/events/stream``."""

    version: int
    type: str
    time: datetime
    data: dict[str, Any]
    metadata: dict[str, Any]


def changes_status(event_type: str) -> bool:
    return event_type in _STATUS_CHANGES
