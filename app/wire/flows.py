"""A flow on the wire: the seed's shapes (``WorkFlowInfo``, ``WorkFlowNodeInfo``, a list, a
detail), the commands' bodies (create, start, stop, cancel, context, retry, callback), and the
projections' rows in those shapes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from flowlog.projections.rows import NodeRow, WorkflowRow
from flowlog.wire.base import (
    JSON_NUMBER,
    MAX_BODY,
    ContextKey,
    FlowId,
    IsoDatetime,
    JsonValue,
    Request,
    Response,
)
from flowlog.wire.tasks import TaskHolder

GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""What the seed (Go) sends for a time that is not set: 0001-01-01T00:00:00Z."""

FlowStatusName = Literal[
    "Initializing", "Processing", "Stopped", "Canceling", "Canceled", "Finished", "Error"
]
NodeStatusName = Literal["Initializing", "Processing", "Finished", "Error", "Canceled"]
Id = Field(min_length=1, max_length=200)


# -- the seed's shapes -------------------------------------------------------------------------


def _unset(value: object) -> bool:
    return value is None


class WorkFlowInfo(Response):
    id: str
    name: str
    bizId: str
    bizType: str
    status: FlowStatusName
    createTime: datetime
    updateTime: datetime
    deleteTime: datetime = GO_ZERO_TIME
    tenantId: str = ""
    definitionVersion: str = ""
    errorCode: int | None = None
    errorMessage: str | None = None
    # A child flow's parent (absent for every other flow: the seed's shape is kept).
    parentFlowId: str | None = Field(None, exclude_if=_unset)
    parentNodeId: str | None = Field(None, exclude_if=_unset)
    """The parent's node execution that started this child."""
    childIndex: int | None = Field(None, exclude_if=_unset)
    branch: str | None = Field(None, exclude_if=_unset)
    """A parallel node's branch that this child runs."""


class WorkFlowNodeInfo(Response):
    id: str
    name: str
    parameters: str = ""
    result: str = ""
    status: NodeStatusName
    startTime: datetime
    endTime: datetime = GO_ZERO_TIME
    key: str = ""
    attempt: int = 1
    operationId: str = ""
    errorCode: int | None = None
    errorMessage: str | None = None


class WorkFlowList(Response):
    workFlows: list[WorkFlowInfo]
    nextCursor: str | None = None
    """Opaque: pass it as ``cursor`` for the next page (deep paging without OFFSET)."""


class WaitingFor(Response):
    """Flow control a flow waits on before its next node may start (docs/workers.md)."""

    limit: Literal["concurrency", "rate"]
    of: str
    """What the limit counts: "flow" (the definition's flows) or "node <key>"."""
    key: str | None
    """The limit's key ("context.clusterId", "bizId", "tenant"), when this server knows it."""
    value: str
    """The flow's value of the key."""
    ahead: int
    """Concurrency: flows waiting ahead of it (created before it)."""
    running: int
    """Concurrency: flows holding the limit's slots now."""
    startsAt: datetime | None = None
    """Rate: when its reserved start comes."""
    reason: str
    """In words: "concurrency context.clusterId=c-1, 3 ahead"."""


class WaitingInfo(Response):
    """The node the flow waits on (a timer or a callback), when it waits on one."""

    nodeId: str
    name: str
    kind: Literal["timer", "callback"]
    wakeAt: datetime | None = None
    """A timer's time to move on."""
    deadline: datetime | None = None
    """A callback's deadline (it fails then with 40128), if it has one."""
    callbackToken: str | None = None
    """The token that completes the callback (POST /api/v1/workflow/callback)."""


class ChildFlow(Response):
    """A child of a parallel or subflow node (a map's are listed with ``parentFlowId``)."""

    workFlowId: str
    index: int
    status: FlowStatusName
    branch: str | None = Field(None, exclude_if=_unset)
    nodes: list[WorkFlowNodeInfo] = Field(default_factory=list)
    """A branch's node executions: the lanes of a parallel node, side by side."""


class ChildrenInfo(Response):
    """The children of one of the flow's map, parallel or subflow node executions."""

    nodeId: str
    """The node execution that started them."""
    key: str
    name: str
    kind: Literal["map", "parallel", "subflow"]
    total: int
    """Children it runs (started or not)."""
    notStarted: int
    running: int
    """Started and not ended (Processing, Stopped, Canceling)."""
    finished: int
    failed: int
    """Ended in Error."""
    canceled: int
    flows: list[ChildFlow] = Field(default_factory=list)


class WorkFlowDetail(Response):
    info: WorkFlowInfo
    nodes: list[WorkFlowNodeInfo]
    nodeNames: list[str]
    waiting: WaitingInfo | None = None
    children: list[ChildrenInfo] | None = Field(None, exclude_if=_unset)
    """A flow with map, parallel or subflow nodes: their children (absent for others)."""
    waitingFor: list[WaitingFor] | None = Field(None, exclude_if=_unset)
    """A flow held back by flow control: what it waits for (absent otherwise)."""
    task: TaskHolder | None = Field(None, exclude_if=_unset)
    """A flow whose running node is offered on a task queue: the queue, and which worker
    holds the task since when (absent for others)."""


class WorkFlowIdRequest(Request):
    workFlowId: FlowId
    reason: str = Field("", max_length=1000)
    """Why (optional; recorded in the event's metadata, shown by the history)."""


class StopRequest(Request):
    workFlowId: FlowId
    reason: str = Field("", max_length=1000)


class CancelRequest(Request):
    workFlowId: FlowId
    reason: str = Field("", max_length=1000)


class FlowFilter(Request):
    """Which flows: the filters of a list (and of a bulk action)."""

    status: FlowStatusName | None = None
    flowName: str | None = Field(None, min_length=1, max_length=200)
    bizId: str | None = Field(None, min_length=1, max_length=200)
    bizType: str | None = Field(None, min_length=1, max_length=200)
    createdFrom: IsoDatetime | None = None
    createdTo: IsoDatetime | None = None
    parentFlowId: FlowId | None = None
    """Only the children of this flow (its map's, parallel's and subflow's)."""


class ListQuery(FlowFilter):
    page: int = Field(1, ge=1, le=1_000_000)
    pageSize: int = Field(10, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=500)


def info_of(row: WorkflowRow) -> WorkFlowInfo:
    return WorkFlowInfo(
        id=row.id,
        name=row.name,
        bizId=row.biz_id,
        bizType=row.biz_type,
        status=row.status,
        createTime=row.created_at,
        updateTime=row.updated_at,
        tenantId=row.tenant_id,
        definitionVersion=row.definition_version,
        errorCode=row.error_code,
        errorMessage=row.error_message,
        parentFlowId=row.parent_id,
        parentNodeId=row.parent_node_id,
        childIndex=row.child_index,
        branch=row.branch,
    )


def node_of(row: NodeRow) -> WorkFlowNodeInfo:
    extra: dict[str, Any] = {} if row.end_time is None else {"endTime": row.end_time}
    return WorkFlowNodeInfo(
        id=row.id,
        name=row.name,
        parameters=row.parameters or "",
        result=row.result,
        status=row.status,
        startTime=row.start_time,
        key=row.node_key,
        attempt=row.attempt,
        operationId=row.operation_id or "",
        errorCode=row.error_code,
        errorMessage=row.error_message,
        **extra,
    )


# -- beyond the seed -------------------------------------------------------------------------


class CreateRequest(Request):
    flowName: str = Id
    bizId: str = Field(..., max_length=200)
    bizType: str = Field(..., max_length=200)
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    start: bool = False
    """Start the flow in the same step (one event append)."""
    priority: Annotated[int, JSON_NUMBER] = Field(0, ge=0, le=9)
    """Among due work (reactors' and task queues'), higher first; a map's children inherit it."""


def body_size(body: Mapping[str, Any]) -> int:
    """The bytes of ``body`` as the shortest JSON a client can send it in (UTF-8, no spaces)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def create_refusal(body: Mapping[str, Any]) -> str | None:
    """Why the REST create (``POST /api/v1/workflow/``) would refuse ``body``, in words for
    people; None when it would take it. For flows made without a request (a schedule's fires),
    so that they are held to the same limits."""
    size = body_size(body)
    if size > MAX_BODY:
        return f"its create request would be {size:,} bytes, over the {MAX_BODY:,} a request takes"
    try:
        CreateRequest.model_validate(body)
    except ValidationError as refusal:
        first = refusal.errors(include_url=False, include_input=False)[0]
        return f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
    return None


class CreatedResponse(Response):
    workFlowId: str
    info: WorkFlowInfo


class ContextRequest(Request):
    workFlowId: FlowId
    key: ContextKey
    value: JsonValue = None
    reason: str = Field("", max_length=1000)


class RetryRequest(Request):
    workFlowId: FlowId
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    """Context changes applied before the failed node runs again."""
    reason: str = Field("", max_length=1000)


class InfoResponse(Response):
    info: WorkFlowInfo


class CallbackRequest(Request):
    """Completes a callback node: by its ``token``, or by ``workFlowId`` and ``nodeId`` (an
    operator who may see the flow)."""

    token: str | None = Field(None, min_length=1, max_length=512)
    workFlowId: FlowId | None = None
    nodeId: str | None = Field(None, min_length=1, max_length=220)
    status: Literal["success", "fail"]
    result: str = Field("", max_length=100_000)
    """Text recorded as the node's result."""
    message: str = Field("", max_length=1000)
    """Why it failed (status "fail"); the node fails with 40129 and this message."""
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    """Context keys to set with the node's outcome."""
    reason: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _one_way(self) -> CallbackRequest:
        by_ids = self.workFlowId is not None or self.nodeId is not None
        if (self.token is None) == (not by_ids) or (
            by_ids and (self.workFlowId is None or self.nodeId is None)
        ):
            raise ValueError("give either token, or both workFlowId and nodeId")
        return self
