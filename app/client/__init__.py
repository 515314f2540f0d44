"""An async Python client of flowlog's REST API (docs/client.md).

``from flowlog.client import FlowlogClient``; its errors are in ``flowlog.client.errors``.
The names are loaded when first asked for, so that a program that only needs the errors (a
command's arguments) does not load the HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowlog.lazy import lazy_names

if TYPE_CHECKING:
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

_HOME = {
    "flowlog.client.client": ("FlowlogClient",),
    "flowlog.client.errors": (
        "BadRequest", "Conflict", "FlowEnded", "FlowlogError", "Forbidden", "Gone",
        "IdempotencyReused", "NotFound", "ServerError", "Unauthorized", "Unavailable",
    ),
    "flowlog.client.events": ("StreamEvent",),
}  # fmt: skip
__getattr__, __dir__ = lazy_names("flowlog.client", _HOME, globals())
