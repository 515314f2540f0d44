"""Who issues a command: recorded in each event's metadata (the audit trail)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowlog.workflow.idempotency import Idempotency


@dataclass(frozen=True, slots=True)
class Caller:
    """Who issues a command, recorded in each event's metadata (the audit trail)."""

    actor: str = "system"
    trace_id: str | None = None
    request_id: str | None = None
    reason: str | None = None
    idempotency: Idempotency | None = None
    """The caller's idempotency key: its command has one effect however often it is sent."""
    traceparent: str | None = None
    """The W3C trace context of the request (app/telemetry): the flow's node spans are its
    children."""

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"actor": self.actor}
        for key in ("trace_id", "request_id", "reason", "traceparent"):
            value = getattr(self, key)
            if value:
                meta[key] = value
        if self.idempotency is not None:
            meta["idempotency_key"] = self.idempotency.key
        return meta


SYSTEM = Caller()
