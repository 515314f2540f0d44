"""The commands ``decide`` takes: operators' (create, context, start, stop, cancel, retry),
the reactor's (advance, record an outcome, wait, wake, interrupt), a callback's completion and
the archiver's seal. Plain data: the request's fingerprint is made of their fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowlog.workflow.events import ParentLink

# -- operators' commands ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateFlow:
    flow_id: str
    biz_id: str
    biz_type: str
    tenant_id: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    parent: ParentLink | None = None
    """A child flow's parent (made by a parent's map, parallel or subflow node)."""
    entry: str | None = None
    """The first node's key, when not ``start`` (a parallel node's branch)."""
    priority: int = 0
    """0 to 9: among due work, higher first (a map's children inherit their parent's)."""


@dataclass(frozen=True, slots=True)
class SetContext:
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class StartFlow:
    pass


@dataclass(frozen=True, slots=True)
class StopFlow:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CancelFlow:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RetryFlow:
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()
    canceled: bool = False
    """A canceled flow runs again too, from where it was canceled: a parent's retry of the
    children its failed node canceled (operators retry flows that failed, not canceled
    ones)."""


# -- the reactor's commands ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Advance:
    """Move forward when no node runs: start the next node, or end the flow."""


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The running node lost its worker (crash, lost lease): it runs again."""

    node_id: str


@dataclass(frozen=True, slots=True)
class RecordSubmitted:
    node_id: str
    operation_id: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class RecordSuccess:
    node_id: str
    result: str = ""
    parameters: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class RecordFailure:
    node_id: str
    code: int
    message: str
    result: str = ""
    parameters: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class RecordWaiting:
    """A timer or callback node's action ran: the node waits (a timer until ``wake_at``)."""

    node_id: str
    wake_at: datetime | None = None
    callback: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Wake:
    """A waiting node's time came: a timer moves on, a callback past its deadline fails."""

    node_id: str


@dataclass(frozen=True, slots=True)
class CompleteCallback:
    """Someone outside completes a callback node (by its token, or an operator by ids)."""

    node_id: str
    succeeded: bool
    by: str
    callback: str | None = None
    reason: str = ""
    result: str = ""
    message: str = ""
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CompleteTask:
    """A worker's answer to a task (docs/workers.md): the node's outcome, decided as the
    reactor decides an executor's. ``operation_id`` is the operation the task was a poll of
    (None: the node's run); ``status`` "running" submits ``new_operation`` (a polling node's
    run) or says the polled operation still runs."""

    node_id: str
    operation_id: str | None
    status: str
    result: str = ""
    message: str = ""
    code: int | None = None
    new_operation: str | None = None
    parameters: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    removed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class ArchiveFlow:
    """Seal an ended flow for archive ``archive_id`` (retention, app/archive/)."""

    archive_id: str


@dataclass(frozen=True, slots=True)
class RecordCanceled:
    """The running node was interrupted because the flow is being canceled."""

    node_id: str


Command = (
    CreateFlow
    | SetContext
    | StartFlow
    | StopFlow
    | CancelFlow
    | RetryFlow
    | Advance
    | Interrupt
    | RecordSubmitted
    | RecordSuccess
    | RecordFailure
    | RecordCanceled
    | RecordWaiting
    | Wake
    | CompleteCallback
    | CompleteTask
    | ArchiveFlow
)
