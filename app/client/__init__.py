"""An async Python client of flowlog's REST API (docs/client.md).

``from flowlog.client import FlowlogClient``; its errors are in ``flowlog.client.errors``.
"""

from flowlog.client.client import FlowlogClient
from flowlog.client.errors import (
    BadRequest,
    Conflict,
    FlowEnded,
    FlowlogError,
    Forbidden,
    Gone,
    IdempotencyReused,
    NotFound,
    ServerError,
    Unauthorized,
    Unavailable,
)
from flowlog.client.events import StreamEvent

__all__ = [
    "BadRequest",
    "Conflict",
    "FlowEnded",
    "FlowlogClient",
    "FlowlogError",
    "Forbidden",
    "Gone",
    "IdempotencyReused",
    "NotFound",
    "ServerError",
    "StreamEvent",
    "Unauthorized",
    "Unavailable",
]
