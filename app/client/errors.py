"""What the client raises: the server's refusals as typed exceptions carrying the envelope's
code and message, and the client's own (the server unreachable, a wait that ended)."""

from __future__ import annotations

from typing import Any


class FlowlogError(Exception):
    """A request flowlog answered with an error envelope (or could not answer at all)."""

    def __init__(
        self, message: str, *, code: int = 0, status: int = 0, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        """The envelope's code (docs/workflows.md, "Error codes"); 0 when there was none."""
        self.status = status
        """The HTTP status; 0 when no answer came."""
        self.data: dict[str, Any] = data or {}

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


class BadRequest(FlowlogError):
    """400: the request was refused as bad input; nothing changed."""


class Unauthorized(FlowlogError):
    """401: no valid bearer token."""


class Forbidden(FlowlogError):
    """403."""


class NotFound(FlowlogError):
    """404: no such flow (or another tenant's), definition, schedule or callback."""


class Conflict(FlowlogError):
    """409: the flow's (or schedule's) state does not allow the command; nothing changed."""


class Gone(FlowlogError):
    """410: the flow was archived; ``data`` names the archive."""


class IdempotencyReused(FlowlogError):
    """422: an Idempotency-Key sent again with another request."""


class ServerError(FlowlogError):
    """500: a fault of the service (its logs have the request id)."""


class Unavailable(FlowlogError):
    """The service or its database could not be reached, after the client's retries."""


class FlowEnded(FlowlogError):
    """``wait()``: the flow ended in a status other than those waited for."""


BY_STATUS: dict[int, type[FlowlogError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: BadRequest,
    415: BadRequest,
    422: IdempotencyReused,
    500: ServerError,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_for(status: int, envelope: dict[str, Any] | None, text: str = "") -> FlowlogError:
    """The exception for an error answer (the envelope when it is one, else its text)."""
    kind = BY_STATUS.get(status, ServerError if status >= 500 else FlowlogError)
    if envelope is None:
        return kind(text.strip() or f"HTTP {status}", status=status)
    return kind(
        str(envelope.get("message", "")) or f"HTTP {status}",
        code=int(envelope.get("code", 0) or 0),
        status=status,
        data=envelope.get("data") if isinstance(envelope.get("data"), dict) else None,
    )
