"""The task API's shapes (docs/workers.md): polls, heartbeats, completions, queues."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from flowlog.wire.base import JSON_NUMBER, ContextKey, JsonValue, Request, Response

QUEUE_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
WORKER_PATTERN = r"^[A-Za-z0-9_.:@/-]{1,200}$"
TOKEN = Field(..., min_length=1, max_length=1024)


class PollRequest(Request):
    queue: str = Field(..., pattern=QUEUE_PATTERN)
    workerId: str = Field(..., pattern=WORKER_PATTERN)
    """Who asks: shown in the console as the holder of the tasks it leases."""
    max: Annotated[int, JSON_NUMBER] = Field(1, ge=1, le=100)
    waitSeconds: Annotated[float, JSON_NUMBER] = Field(0, ge=0, le=30)
    """How long to wait for a task when none is offered (a long poll)."""


class TaskInfo(Response):
    taskToken: str
    """Present it to heartbeat and complete; good for this lease only."""
    workFlowId: str
    flowName: str
    bizId: str
    nodeId: str
    nodeName: str
    nodeKey: str
    kind: str
    attempt: int
    operationId: str | None
    """A polling node's poll: the operation to look at (None: run the node)."""
    context: dict[str, Any]
    parameters: str | None
    priority: int
    leaseSeconds: float


class PollResponse(Response):
    tasks: list[TaskInfo]


class HeartbeatRequest(Request):
    taskToken: str = TOKEN
    details: JsonValue | None = None
    """Progress to show (kept with the lease, at most 64 KB of JSON)."""


class HeartbeatResponse(Response):
    wanted: bool
    """False: the flow no longer wants the result (stopped, canceled, or the lease is over);
    the worker should stop."""
    status: str
    """The flow's status."""


class CompleteRequest(Request):
    taskToken: str = TOKEN
    status: Literal["success", "fail", "running"]
    result: str = Field("", max_length=100_000)
    """Text recorded as the node's result."""
    context: dict[ContextKey, JsonValue] = Field(default_factory=dict)
    """Context keys to set with the node's outcome."""
    contextRemoved: list[ContextKey] = Field(default_factory=list, max_length=1000)
    message: str = Field("", max_length=1000)
    """Why it failed (status "fail")."""
    code: Annotated[int | None, JSON_NUMBER] = Field(None, ge=1, le=2**31 - 1)
    """The failure's code (status "fail"; default 40109)."""
    operationId: str | None = Field(None, min_length=1, max_length=200)
    """A polling node's run: the operation it submitted (status "running")."""
    parameters: str | None = Field(None, max_length=100_000)

    @model_validator(mode="after")
    def _operation_when_running(self) -> CompleteRequest:
        if self.operationId is not None and self.status != "running":
            raise ValueError("operationId goes with status running")
        return self


class CompleteResponse(Response):
    workFlowId: str
    nodeId: str
    status: str
    """The flow's status after the answer."""


class QueueInfo(Response):
    queue: str
    depth: int
    """Tasks offered now, waiting for a worker."""
    later: int
    """Polls offered at a later time (a polling node's next poll)."""
    held: int
    """Tasks leased by workers now."""
    paused: int
    """Tasks of stopped flows (offered again when they are started)."""
    oldestSeconds: float | None
    """How long the oldest offered task has waited."""
    workers: list[str]
    """Workers seen in the last minute (a poll or a heartbeat)."""
    lastSeen: datetime | None


class QueueList(Response):
    queues: list[QueueInfo]


class TaskHolder(Response):
    """The task a flow's running node offers: on which queue, held by whom since when."""

    queue: str
    nodeId: str
    operationId: str | None
    offeredAt: datetime | None
    workerId: str | None
    claimedAt: datetime | None
    leaseExpiresAt: datetime | None
    details: Any = None
