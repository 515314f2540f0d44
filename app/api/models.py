"""The API's request and response bodies, as pydantic models: they validate input (unknown
fields are refused) and generate the OpenAPI document. Field names are the seed's (camelCase).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from flowlog.flow_ids import FLOW_ID_PATTERN, NOT_A_FLOW_ID, is_flow_id
from flowlog.storable import JSON_INTEGERS, unstorable
from flowlog.times import parse_utc

MAX_BODY: Final = 1024 * 1024
"""The largest request body the API reads, in bytes (a larger one is refused with 413)."""
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""What the seed (Go) sends for a time that is not set: 0001-01-01T00:00:00Z."""

FlowStatusName = Literal[
    "Initializing", "Processing", "Stopped", "Canceling", "Canceled", "Finished", "Error"
]
NodeStatusName = Literal["Initializing", "Processing", "Finished", "Error", "Canceled"]
Id = Field(min_length=1, max_length=200)


def _flow_id(value: str) -> str:
    if not is_flow_id(value):
        raise PydanticCustomError("flow_id", NOT_A_FLOW_ID)
    return value


FlowId = Annotated[
    str, AfterValidator(_flow_id), WithJsonSchema({"type": "string", "pattern": FLOW_ID_PATTERN})
]
"""A flow's id in a request: one flowlog could have made (app/flow_ids.py), else 400."""

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "workFlowId": {"type": "string", "pattern": FLOW_ID_PATTERN},
}
"""The OpenAPI schemas of path parameters that are not any text (routes check them)."""


JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value whose numbers are within the range of 64-bit integers and "
    "whose text holds no NUL (an integer beyond it is refused; JSON cannot tell 1e30 from an "
    "integer, so the range is stated for every number).",
    "anyOf": [
        {"type": "number", "minimum": JSON_INTEGERS.start, "maximum": JSON_INTEGERS.stop - 1},
        {"type": "string"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
    ],
}
"""The OpenAPI schema of a context value (a component, ``JsonValue``: it refers to itself)."""
JSON_VALUE_MARK = {"x-flowlog-json-value": True}
"""Where a context value's schema goes; the OpenAPI builder puts the ``JsonValue`` reference
there (pydantic would try to resolve the reference itself, and cannot)."""
JsonValue = Annotated[Any, WithJsonSchema(JSON_VALUE_MARK)]
"""A value a request puts in a flow's context: any JSON, checked storable by ``Request``."""


def _iso_datetime(value: Any) -> Any:
    """ISO 8601 text only (see parse_utc), in UTC."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 date-time")
    return parse_utc(value)


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _storable(self) -> Request:
        if unstorable(self) is not None:
            raise ValueError(
                "values must be storable: no NUL characters, lone surrogates, NaN, Infinity, "
                "or integers beyond 64 bits"
            )
        return self


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- the seed's shapes -------------------------------------------------------------------------


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


class WorkFlowDetail(Response):
    info: WorkFlowInfo
    nodes: list[WorkFlowNodeInfo]
    nodeNames: list[str]
    waiting: WaitingInfo | None = None


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


class ListQuery(FlowFilter):
    page: int = Field(1, ge=1, le=1_000_000)
    pageSize: int = Field(10, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=500)


# -- beyond the seed -------------------------------------------------------------------------


RESERVED_CONTEXT_KEYS = frozenset({"traceId", "userId", "tenantId"})
"""Set by flowlog from the request (trace id, token): a caller must not pose as another.
FlowContext's TRACE_ID, USER_ID and TENANT_ID (spelled out: app.workflow imports this module).
"""


def _unreserved(key: str) -> str:
    if key in RESERVED_CONTEXT_KEYS:
        raise ValueError(f"context key {key!r} is set by flowlog, not by a request")
    return key


ContextKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        json_schema_extra={"not": {"enum": sorted(RESERVED_CONTEXT_KEYS)}},
    ),
    AfterValidator(_unreserved),
]


class CreateRequest(Request):
    flowName: str = Id
    bizId: str = Field(..., max_length=200)
    bizType: str = Field(..., max_length=200)
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    start: bool = False
    """Start the flow in the same step (one event append)."""


def max_length(model: type[BaseModel], field: str) -> int:
    """The most characters ``field`` of ``model`` takes (its ``max_length``)."""
    for rule in model.model_fields[field].metadata:  # pydantic's MaxLen (annotated-types)
        length = getattr(rule, "max_length", None)
        if isinstance(length, int):
            return length
    raise LookupError(f"{model.__name__}.{field} has no max_length")


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


class HistoryQuery(Request):
    page: int = Field(1, ge=1, le=1_000_000)
    pageSize: int = Field(50, ge=1, le=500)


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


# -- bulk ----------------------------------------------------------------------------------

BULK_LIMIT = 1000
BulkAction = Literal["start", "stop", "cancel", "retry"]


class BulkRequest(Request):
    """One action on many flows: the flows named, or a page of those matching a filter."""

    action: BulkAction
    workFlowIds: list[FlowId] | None = Field(None, min_length=1, max_length=BULK_LIMIT)
    filter: FlowFilter | None = None
    """The flows a list with these filters shows (the tenant's own, with a token)."""
    cursor: str | None = Field(None, min_length=1, max_length=500)
    """With ``filter``: continue after the flows of the previous answer (its ``nextCursor``)."""
    limit: int = Field(100, ge=1, le=BULK_LIMIT)
    """With ``filter``: at most this many flows, newest first."""
    reason: str = Field("", max_length=1000)
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    """Retry only: context changes applied to each flow before its failed node runs again."""

    @model_validator(mode="after")
    def _one_selection(self) -> BulkRequest:
        if (self.workFlowIds is None) == (self.filter is None):
            raise ValueError("name the flows (workFlowIds) or a filter, not both nor neither")
        if self.cursor is not None and self.filter is None:
            raise ValueError("cursor continues a filter's selection; it needs the filter")
        if self.workFlowIds is not None and len(set(self.workFlowIds)) != len(self.workFlowIds):
            raise ValueError("workFlowIds names a flow twice")
        if self.context and self.action != "retry":
            raise ValueError("context changes go with retry only")
        return self


class BulkResult(Response):
    workFlowId: str
    code: int
    """0: done; else why this flow was refused (the code a single command would answer)."""
    message: str
    status: FlowStatusName | None = None
    """The flow's status after the action (when it was done)."""


class BulkResponse(Response):
    action: BulkAction
    results: list[BulkResult]
    """One per selected flow, in the order selected: none is left out."""
    succeeded: int
    failed: int
    nextCursor: str | None = None
    """With a filter: more flows may match; send the same request with this cursor."""


# -- definitions -----------------------------------------------------------------------------


class NoopExecutor(Request):
    """Does nothing: a join point, or a placeholder."""

    type: Literal["noop"]


class SleepExecutor(Request):
    """Waits ``seconds``: durably on a timer node (holding no worker, up to a year), in the
    worker on a sync node (holding it, up to a day)."""

    type: Literal["sleep"]
    seconds: float = Field(..., ge=0, le=366 * 86_400)


class UntilExecutor(Request):
    """A timer node's: waits until ``at``, or until the time in the context key
    ``contextKey`` (ISO 8601 with a UTC offset); a time already past moves on at once."""

    type: Literal["until"]
    at: IsoDatetime | None = None
    contextKey: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_time(self) -> UntilExecutor:
        if (self.at is None) == (self.contextKey is None):
            raise ValueError("give either at or contextKey")
        return self


class FailExecutor(Request):
    """Fails with ``code`` and ``message`` (to try fail transitions and retries)."""

    type: Literal["fail"]
    code: int | None = Field(None, ge=1, le=2_000_000_000)
    message: str | None = Field(None, max_length=1000)


class HttpExecutor(Request):
    """Calls ``url`` with the flow context; as a polling node, ``statusUrl`` is polled."""

    type: Literal["http"]
    url: str = Field(..., min_length=1, max_length=2000)
    method: Literal["GET", "POST", "PUT"] = "POST"
    statusUrl: str | None = Field(None, min_length=1, max_length=2000)


ExecutorSpec = Annotated[
    NoopExecutor | SleepExecutor | UntilExecutor | FailExecutor | HttpExecutor,
    Field(discriminator="type"),
]


class RetrySpec(Request):
    maxAttempts: int = Field(1, ge=1, le=100)
    initialInterval: float = Field(1.0, ge=0, le=86_400)
    backoff: float = Field(2.0, ge=1, le=100)
    maxInterval: float = Field(300.0, ge=0, le=86_400)


class NodeSpec(Request):
    name: str = Field(..., min_length=1, max_length=200)
    executor: ExecutorSpec
    success: str = Field("", max_length=200)
    fail: str = Field("", max_length=200)
    kind: Literal["sync", "polling", "timer", "callback"] = "sync"
    pollInterval: float = Field(3.0, gt=0, le=86_400)
    pollDeadline: float = Field(86_400.0, gt=0, le=30 * 86_400)
    timeout: float | None = Field(None, gt=0, le=86_400)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    maxInterruptions: int | None = Field(None, ge=0, le=100, exclude_if=lambda v: v is None)
    """Times in a row the node runs again after its worker was lost (default 3); one more
    fails it (40110). Left out of the stored spec when unset, so the versions of definitions
    registered before it existed stay the same."""
    deadline: float | None = Field(None, gt=0, le=366 * 86_400, exclude_if=lambda v: v is None)
    """A callback node's: seconds it waits for its callback, then fails (40128)."""


class DefinitionSpec(Request):
    name: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    nodes: dict[str, NodeSpec] = Field(..., min_length=1, max_length=200)


class DefinitionVersion(Response):
    version: str
    registeredAt: datetime
    nodeNames: list[str]
    definition: dict[str, Any]


class DefinitionSummary(Response):
    name: str
    latestVersion: str
    versions: int
    nodeNames: list[str]


class DefinitionList(Response):
    definitions: list[DefinitionSummary]


class DefinitionDetail(Response):
    name: str
    latestVersion: str
    versions: list[DefinitionVersion]


class RegisteredResponse(Response):
    name: str
    version: str
    nodeNames: list[str]


class ReplicaHealth(Response):
    """A read replica as this process sees it: ``ok`` serves reads; ``lagging``, ``down``,
    ``foreign`` (not a standby of this primary) and ``unknown`` (not checked yet) do not."""

    name: str
    state: Literal["ok", "lagging", "down", "foreign", "unknown"]
    lagSeconds: float | None = None
    replayed: str | None = None
    """How far it has replayed the primary's WAL (a commit position), as last seen."""
    error: str | None = None


class Health(Response):
    status: str
    checks: dict[str, bool] = Field(default_factory=dict)


class Ready(Health):
    replicas: list[ReplicaHealth] = Field(default_factory=list)
    """The read replicas (FLOWLOG_READ_DATABASE_URL): one that is down or lagging does not
    make the service unready (the primary answers its reads)."""


# -- the envelope ----------------------------------------------------------------------------

T = TypeVar("T")


class Page(Response):
    page: int
    pageSize: int
    total: int


class Envelope(Response, Generic[T]):
    code: int = 0
    message: str = "OK"
    data: T


class PagedEnvelope(Response, Generic[T]):
    code: int = 0
    message: str = "OK"
    data: T
    page: Page


class Empty(Response):
    pass


class Readiness(Envelope[Ready]):
    """``/readyz`` answers in the envelope itself: its 503 carries the checks too."""


class ErrorEnvelope(Response):
    code: int
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
