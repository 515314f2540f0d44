"""An async Python client of flowlog's REST API (docs/client.md).

``from app.client import FlowlogClient``; its errors are in ``app.client.errors``.
"""

from app.client.client import FlowlogClient
from app.client.errors import (
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
from app.client.events import StreamEvent

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
