"""The events of a flow's stream, as typed models.

One stream per flow (``flow-<id>``). Every event records a decision, not just a fact: a
node's outcome names the node that comes next, so that the history alone (without the
definition) folds into the flow's state, and audit and replay never depend on today's code.

Each event type has a schema version. Stored data of an older version is upcast (see
``UPCASTERS``) to the current model before it is validated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

JsonObject = dict[str, Any]


class FlowEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: ClassVar[int] = 1


def _absent(value: object) -> bool:
    return value is None


class ParentLink(BaseModel):
    """A child flow's parent: the flow, the node execution that started it, the child's index
    among that node's children, and (a parallel node's branch) the branch's name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flow_id: str
    node_id: str
    index: int
    branch: str | None = Field(None, exclude_if=_absent)
    depth: int = 1
    """How deep in its tree: a child of a flow without a parent is 1."""


class FlowCreated(FlowEvent):
    type: Literal["FlowCreated"] = "FlowCreated"
    flow_id: str
    name: str
    biz_id: str
    biz_type: str
    definition_version: str
    tenant_id: str = ""
    context: JsonObject = Field(default_factory=dict)
    # Absent (not null) from the stored data of a flow without them: the histories of flows
    # without a parent are the same as before children existed.
    parent: ParentLink | None = Field(None, exclude_if=_absent)
    entry: str | None = Field(None, exclude_if=_absent)
    """The key of the first node (a parallel branch's entry); None: ``start``."""
    priority: int = Field(0, exclude_if=lambda v: v == 0)
    """0 to 9: among due work, higher first (absent: 0)."""


class ContextSet(FlowEvent):
    type: Literal["ContextSet"] = "ContextSet"
    changes: JsonObject = Field(default_factory=dict)
    removed: list[str] = Field(default_factory=list)


class FlowStarted(FlowEvent):
    type: Literal["FlowStarted"] = "FlowStarted"


class FlowStopped(FlowEvent):
    type: Literal["FlowStopped"] = "FlowStopped"
    reason: str = ""


class FlowResumed(FlowEvent):
    type: Literal["FlowResumed"] = "FlowResumed"


class CancelRequested(FlowEvent):
    type: Literal["CancelRequested"] = "CancelRequested"
    reason: str = ""


class FlowCanceled(FlowEvent):
    type: Literal["FlowCanceled"] = "FlowCanceled"
    reason: str = ""
    node_id: str | None = None
    """The node that was running and is now Canceled, if any."""


class FlowRetried(FlowEvent):
    type: Literal["FlowRetried"] = "FlowRetried"
    from_key: str
    """The node that runs again (the one whose failure ended or paused the flow)."""
    child_changes: JsonObject | None = Field(None, exclude_if=_absent)
    """A map or parallel node that runs again re-runs only its failed children, each with
    these context changes (the retry's patch); absent for other nodes."""
    child_removed: list[str] | None = Field(None, exclude_if=_absent)


class ChildrenStarted(FlowEvent):
    """A map, parallel or sub-flow node started children ``first`` to ``first + count - 1``
    of ``total`` (their flows were created just before: ids derive from the node and index),
    at most ``limit`` running at once."""

    type: Literal["ChildrenStarted"] = "ChildrenStarted"
    node_id: str
    first: int
    count: int
    total: int
    limit: int


class ChildrenEnded(FlowEvent):
    """Children of the running node ended: ``[index, status]`` pairs (Finished, Error,
    Canceled), counted once each (harvested from ``flow_children`` in this same append)."""

    type: Literal["ChildrenEnded"] = "ChildrenEnded"
    node_id: str
    ended: list[tuple[int, str]]


class ChildrenCommanded(FlowEvent):
    """The node's children were told to follow the parent: ``stop``, ``resume``, ``retry``
    (the failed ones, ``indexes``) or ``cancel`` (those still running, when the node ends
    without them)."""

    type: Literal["ChildrenCommanded"] = "ChildrenCommanded"
    node_id: str
    command: Literal["stop", "resume", "retry", "cancel"]
    indexes: list[int] = Field(default_factory=list)


class NodeStarted(FlowEvent):
    type: Literal["NodeStarted"] = "NodeStarted"
    node_id: str
    key: str
    name: str
    kind: str
    attempt: int
    adopts: str | None = Field(None, exclude_if=_absent)
    """A map or parallel node run again by a retry takes over the children of its failed
    execution (this node id): the failed ones run again, the others stay as they ended."""
    queue: str | None = Field(None, exclude_if=_absent)
    """The task queue the node is offered on: a worker runs it (docs/workers.md)."""


class NodeOperationSubmitted(FlowEvent):
    type: Literal["NodeOperationSubmitted"] = "NodeOperationSubmitted"
    node_id: str
    operation_id: str
    next_poll_at: datetime
    poll_deadline: datetime
    context_changes: JsonObject = Field(default_factory=dict)
    context_removed: list[str] = Field(default_factory=list)


class NodeWaiting(FlowEvent):
    """A timer or callback node's own action ran: the node waits, holding no worker, until
    ``wake_at`` (a timer) or until someone completes it (a callback; it fails at
    ``deadline``, if any)."""

    type: Literal["NodeWaiting"] = "NodeWaiting"
    node_id: str
    wake_at: datetime | None = None
    deadline: datetime | None = None
    callback: str | None = None
    """A callback node's token id (a fingerprint of the token; the token itself is a secret
    and is not recorded)."""
    event: JsonObject | None = Field(None, exclude_if=_absent)
    """A callback node that waits for a CloudEvent too: ``{"type", "match"}``, the match
    rendered from the context (absent for other nodes: their histories stay as they were)."""
    context_changes: JsonObject = Field(default_factory=dict)
    context_removed: list[str] = Field(default_factory=list)


class CallbackReceived(FlowEvent):
    """Someone completed a callback node: who (also in the metadata), why, and with what. The
    node's outcome follows in the same append, decided from the definition."""

    type: Literal["CallbackReceived"] = "CallbackReceived"
    node_id: str
    status: Literal["success", "fail"]
    by: str
    callback: str | None = None
    """The token id, when completed by token (None: by flow and node id, as an operator)."""
    reason: str = ""


class NodeSucceeded(FlowEvent):
    type: Literal["NodeSucceeded"] = "NodeSucceeded"
    node_id: str
    result: str = ""
    parameters: str | None = None
    context_changes: JsonObject = Field(default_factory=dict)
    context_removed: list[str] = Field(default_factory=list)
    next: str | None = None
    """The key of the node that comes next; None ends the path."""


class NodeFailed(FlowEvent):
    type: Literal["NodeFailed"] = "NodeFailed"
    node_id: str
    error_code: int
    error_message: str
    result: str = ""
    parameters: str | None = None
    context_changes: JsonObject = Field(default_factory=dict)
    context_removed: list[str] = Field(default_factory=list)
    will_retry: bool = False
    retry_at: datetime | None = None
    pause: bool = False
    """The fail transition is "pause": the flow stops on this node."""
    next: str | None = None
    """Without retry or pause: the failure handler's key, or None (the flow ends in Error)."""


class FlowFinished(FlowEvent):
    type: Literal["FlowFinished"] = "FlowFinished"


class FlowFailed(FlowEvent):
    type: Literal["FlowFailed"] = "FlowFailed"
    error_code: int
    error_message: str


class FlowArchived(FlowEvent):
    """The flow is sealed for its archive (retention): it takes no command from now on."""

    type: Literal["FlowArchived"] = "FlowArchived"
    archive_id: str


class FlowRestored(FlowEvent):
    """The flow came back from its archive (``flowlog import``): it is a flow like any other."""

    type: Literal["FlowRestored"] = "FlowRestored"
    archive_id: str


class FlowMigrated(FlowEvent):
    """Someone moved the flow from one version of its definition to another (a migration,
    docs/workflows.md "Moving flows to another version"): from now on it runs under
    ``to_version``, its node keys renamed by ``node_map`` (a key of the old version -> the
    key of the new version; keys not named stay as they are). Reversible: migrating back is
    another FlowMigrated."""

    type: Literal["FlowMigrated"] = "FlowMigrated"
    from_version: str
    to_version: str
    node_map: dict[str, str] = Field(default_factory=dict)


AnyFlowEvent = Annotated[
    FlowCreated
    | ContextSet
    | FlowStarted
    | FlowStopped
    | FlowResumed
    | CancelRequested
    | FlowCanceled
    | FlowRetried
    | NodeStarted
    | NodeOperationSubmitted
    | NodeWaiting
    | CallbackReceived
    | NodeSucceeded
    | NodeFailed
    | FlowFinished
    | FlowFailed
    | FlowArchived
    | FlowRestored
    | ChildrenStarted
    | ChildrenEnded
    | ChildrenCommanded
    | FlowMigrated,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[AnyFlowEvent] = TypeAdapter(AnyFlowEvent)
EVENT_TYPES: dict[str, type[FlowEvent]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        FlowCreated, ContextSet, FlowStarted, FlowStopped, FlowResumed, CancelRequested,
        FlowCanceled, FlowRetried, NodeStarted, NodeOperationSubmitted, NodeWaiting,
        CallbackReceived, NodeSucceeded, NodeFailed, FlowFinished, FlowFailed, FlowArchived,
        FlowRestored, ChildrenStarted, ChildrenEnded, ChildrenCommanded, FlowMigrated,
    )
}  # fmt: skip
_VALIDATORS = {name: cls.__pydantic_validator__ for name, cls in EVENT_TYPES.items()}

Upcaster = Callable[[JsonObject], JsonObject]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event type, stored schema version) -> function turning that data into the next version's.
Register one here whenever an event's schema version is raised."""

SCHEMA_KEY = "schema_version"


def encode(event: FlowEvent) -> tuple[str, JsonObject, JsonObject]:
    """(type, data, schema metadata) to append."""
    data = event.model_dump(mode="json", exclude={"type"})
    return event.type, data, {SCHEMA_KEY: event.schema_version}  # type: ignore[attr-defined]


def decode(event_type: str, data: Mapping[str, Any], metadata: Mapping[str, Any]) -> FlowEvent:
    """The typed event from stored data, upcast to the current schema version first."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown flow event type {event_type!r}")
    stored = int(metadata.get(SCHEMA_KEY, 1))
    if stored >= cls.schema_version and isinstance(data, dict) and "type" not in data:
        # The common case, validated by the type's own model: no copy of the data, no union
        # to dispatch (every fold decodes every event of a stream).
        return _VALIDATORS[event_type].validate_python(data)  # type: ignore[no-any-return]
    body = dict(data)
    while stored < cls.schema_version:
        upcast = UPCASTERS.get((event_type, stored))
        if upcast is None:
            raise ValueError(f"no upcaster for {event_type} schema version {stored}")
        body = upcast(body)
        stored += 1
    body["type"] = event_type
    return _ADAPTER.validate_python(body)
