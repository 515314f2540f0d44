"""A flow's past on the wire: its events (paged), its state at a version or a time, and what
changed between two points (the audit documents of app/audit/, as the CLI prints them)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from flowlog.wire.base import IsoDatetime, Request, Response
from flowlog.wire.flows import FlowStatusName, NodeStatusName


class HistoryQuery(Request):
    page: int = Field(1, ge=1, le=1_000_000)
    pageSize: int = Field(50, ge=1, le=500)


STREAM_ENDS = frozenset({"FlowFinished", "FlowFailed", "FlowCanceled"})
"""The events after which a flow's event stream (SSE) closes: the server ends it there, the
client stops reading there."""


AuditTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""RFC 3339 in UTC with microseconds (the audit documents' one format, as SQL writes it)."""


class HistoryEvent(Response):
    """One event as ``flowlog history --json`` prints it."""

    version: int
    position: int
    time: AuditTime
    type: str
    actor: str = ""
    """Who: ``token:<name>`` for an API token, ``reactor:<process>`` for the engine."""
    reason: str = ""
    """Why, when the operator said (stop, cancel, retry, start, context)."""
    requestId: str | None = None
    traceId: str | None = None
    summary: str = ""
    """What, in a line for people (the same as ``flowlog history`` and SQL's flow_history)."""
    data: dict[str, Any]
    metadata: dict[str, Any]


class HistoryResponse(Response):
    events: list[HistoryEvent]


class StateQuery(Request):
    version: int | None = Field(None, ge=1, le=2**63 - 1)
    """The flow's state after its event of this version."""
    at: IsoDatetime | None = None
    """The flow's state at this time (after its last event recorded then or before); with
    ``version`` too, whichever comes first."""


class NodeState(Response):
    id: str
    key: str
    name: str
    kind: str
    attempt: int
    status: NodeStatusName
    startTime: AuditTime
    endTime: AuditTime | None
    operationId: str | None
    result: str
    errorCode: int | None
    errorMessage: str | None


class StateResponse(Response):
    """A flow's state at a point: the same document as ``flowlog replay --json`` and SQL's
    ``flow_state()``."""

    flowId: str
    name: str
    definitionVersion: str
    version: int
    updatedAt: AuditTime
    status: FlowStatusName
    currentNode: str | None
    """The name of the node running then, if any."""
    nextNodeKey: str | None
    """The key of the node that runs next (or runs now); null once the path has ended."""
    failedNodeKey: str | None
    errorCode: int | None
    errorMessage: str | None
    reason: str
    context: dict[str, Any]
    nodes: list[NodeState]


POINT_PATTERN = r"^([1-9][0-9]{0,17}|[0-9]{4}-[0-9]{2}-[0-9]{2}.*)$"
"""A version (from 1) or an ISO 8601 date-time."""


class DiffQuery(Request):
    """Two points of the history, each a version or an ISO 8601 time."""

    since: str = Field(..., max_length=64, pattern=POINT_PATTERN)
    until: str = Field(..., max_length=64, pattern=POINT_PATTERN)


class Change(Response):
    where: str
    before: Any
    after: Any


class DiffResponse(Response):
    changes: list[Change]
