"""A flow's status after one of its events, from the events alone: what a delivery says and
what a subscription's ``statuses`` filter on. The same answer as the fold
(app/workflow/fold.py) for every prefix of every history (tests/webhooks/test_status.py),
without folding: only the last event that changes the status matters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowlog.workflow.state import FlowStatus

_SET_BY: Mapping[str, FlowStatus] = {
    "FlowCreated": FlowStatus.INITIALIZING,
    "FlowStarted": FlowStatus.PROCESSING,
    "FlowResumed": FlowStatus.PROCESSING,
    "FlowRetried": FlowStatus.PROCESSING,
    "FlowStopped": FlowStatus.STOPPED,
    "CancelRequested": FlowStatus.CANCELING,
    "FlowCanceled": FlowStatus.CANCELED,
    "FlowFinished": FlowStatus.FINISHED,
    "FlowFailed": FlowStatus.ERROR,
}

STATUS_EVENTS: tuple[str, ...] = (*_SET_BY, "NodeFailed")
"""The event types that may change a flow's status (a NodeFailed only when it pauses)."""


def changes_status(event_type: str, data: Mapping[str, Any]) -> FlowStatus | None:
    """The status ``event`` sets, or None when it leaves the status as it was."""
    status = _SET_BY.get(event_type)
    if status is not None:
        return status
    if event_type == "NodeFailed" and data.get("pause") and not data.get("will_retry"):
        return FlowStatus.STOPPED  # the fail transition is "pause"
    return None


def status_after(before: str | None, event_type: str, data: Mapping[str, Any]) -> str | None:
    """The flow's status after the event, ``before`` being its status before it (None: not
    known, for an event of a history whose start is not read)."""
    status = changes_status(event_type, data)
    return before if status is None else status.value
