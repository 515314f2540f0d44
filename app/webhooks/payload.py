"""A delivery's body: the Standard Webhooks payload shape (``type``, ``timestamp``, ``data``)
with the event's place in the log, its flow, the flow's status after it, who did it, and the
event's data as the history API shows it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body(
    *,
    position: int,
    stream_id: str,
    version: int,
    event_type: str,
    data: Mapping[str, Any],
    metadata: Mapping[str, Any],
    recorded_at: datetime,
    created: Mapping[str, Any],
    status: str | None,
) -> bytes:
    """The JSON body of one event's delivery (``created``: the flow's FlowCreated data)."""
    payload = {
        "type": event_type,
        "timestamp": rfc3339(recorded_at),
        "data": {
            "position": position,
            "streamVersion": version,
            "flowId": stream_id.removeprefix("flow-"),
            "flowName": created.get("name", ""),
            "bizId": created.get("biz_id", ""),
            "bizType": created.get("biz_type", ""),
            "tenant": created.get("tenant_id", ""),
            "status": status,
            "actor": metadata.get("actor", ""),
            "traceId": metadata.get("trace_id"),
            "event": data,
        },
    }
    return orjson.dumps(payload)
