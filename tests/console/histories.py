"""Flow histories written by hand, as the service records them, for the console's pure parts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from flowlog.audit.history import HistoryLine
from flowlog.workflow.events import (
    FlowCreated,
    FlowEvent,
    FlowStarted,
    NodeFailed,
    NodeOperationSubmitted,
    NodeStarted,
    NodeSucceeded,
    encode,
)

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def lines(
    events: Sequence[tuple[FlowEvent, float]], actor: str = "token:alice"
) -> list[HistoryLine]:
    """History lines of ``events``, each recorded ``seconds`` after T0."""
    out = []
    for version, (event, seconds) in enumerate(events, start=1):
        kind, data, metadata = encode(event)
        out.append(
            HistoryLine(
                version=version, position=version, recorded_at=at(seconds), type=kind,
                actor=actor, reason="", request_id=None, trace_id=None, summary=kind,
                data=data, metadata={**metadata, "actor": actor},
            )
        )  # fmt: skip
    return out


def created(flow_id: str = "f1", **context: object) -> FlowCreated:
    return FlowCreated(
        flow_id=flow_id, name="backup", biz_id="b", biz_type="t", definition_version="v1",
        context=dict(context),
    )  # fmt: skip


def started(key: str, name: str, n: int, attempt: int = 1, kind: str = "sync") -> NodeStarted:
    return NodeStarted(node_id=f"f1.{n}", key=key, name=name, kind=kind, attempt=attempt)


def succeeded(n: int, following: str | None, **changes: object) -> NodeSucceeded:
    return NodeSucceeded(node_id=f"f1.{n}", result="ok\n", next=following,
                         context_changes=dict(changes))  # fmt: skip


def failed(n: int, code: int = 7001, **options: object) -> NodeFailed:
    return NodeFailed(node_id=f"f1.{n}", error_code=code, error_message="boom", **options)  # type: ignore[arg-type]


def submitted(n: int, seconds: float) -> NodeOperationSubmitted:
    return NodeOperationSubmitted(
        node_id=f"f1.{n}", operation_id="op-1", next_poll_at=at(seconds + 1),
        poll_deadline=at(seconds + 600),
    )  # fmt: skip


__all__ = ["FlowStarted", "at", "created", "failed", "lines", "started", "submitted", "succeeded"]
