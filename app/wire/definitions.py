"""Definitions on the wire: one made of built-in executors, as a client registers it (JSON;
app/builtins.py builds the definition from it), and the versions the log holds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, model_validator

from flowlog.wire.base import JSON_NUMBER, IsoDatetime, Request, Response


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


def _unset(value: object) -> bool:
    return value is None


class AtLeast(Request):
    atLeast: int = Field(..., ge=1, le=200)


class ConcurrencySpec(Request):
    key: str = Field(..., pattern=r"^(bizId|tenant|context\.[^\x00]{1,200})$")
    """Whose flows count together: "bizId", "tenant" or "context.<key>"."""
    limit: Annotated[int, JSON_NUMBER] = Field(..., ge=1, le=100_000)


class RateLimitSpec(Request):
    key: str = Field(..., pattern=r"^(bizId|tenant|context\.[^\x00]{1,200})$")
    limit: Annotated[int, JSON_NUMBER] = Field(..., ge=1, le=100_000)
    periodSeconds: Annotated[float, JSON_NUMBER] = Field(..., gt=0, le=86_400)


class EventWaitSpec(Request):
    """A callback node's CloudEvent: of this type, its data containing the match (templates
    ``{{context.key}}`` filled from the flow's context when the node starts waiting)."""

    type: str = Field(..., min_length=1, max_length=256)
    match: dict[str, JsonValue] = Field(..., max_length=64)
    """At most 64 keys, nested objects' included; {} matches every event of the type."""


class NodeSpec(Request):
    name: str = Field(..., min_length=1, max_length=200)
    executor: ExecutorSpec | None = Field(None, exclude_if=_unset)
    """Every kind's but map, parallel and subflow (their children are their work)."""
    success: str = Field("", max_length=200)
    fail: str = Field("", max_length=200)
    kind: Literal["sync", "polling", "timer", "callback", "map", "parallel", "subflow"] = "sync"
    pollInterval: float = Field(3.0, gt=0, le=86_400)
    pollDeadline: float = Field(86_400.0, gt=0, le=30 * 86_400)
    timeout: float | None = Field(None, gt=0, le=86_400)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    maxInterruptions: int | None = Field(None, ge=0, le=100, exclude_if=lambda v: v is None)
    """Times in a row the node runs again after its worker was lost (default 3); one more
    fails it (40110). Left out of the stored spec when unset, so the versions of definitions
    registered before it existed stay the same."""
    concurrency: ConcurrencySpec | None = Field(None, exclude_if=_unset)
    """At most this many executions of the node at once per key value."""
    rateLimit: RateLimitSpec | None = Field(None, exclude_if=_unset)
    """At most this many starts of the node per period per key value, evenly spaced."""
    queue: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$", exclude_if=_unset)
    """sync, polling: the task queue it is offered on; workers run it (docs/workers.md), so it
    takes no executor."""
    deadline: float | None = Field(None, gt=0, le=366 * 86_400, exclude_if=lambda v: v is None)
    """A callback node's: seconds it waits for its callback, then fails (40128)."""
    event: EventWaitSpec | None = Field(None, exclude_if=_unset)
    """A callback node's: the CloudEvent that completes it too (docs/workflows.md)."""
    # Map, parallel and subflow nodes' settings (docs/workflows.md, "Children"); left out of
    # the stored spec when unset, so that other definitions keep their versions.
    flow: str | None = Field(None, min_length=1, max_length=200, exclude_if=_unset)
    """map, subflow: the definition each child runs."""
    items: str | None = Field(None, min_length=1, max_length=200, exclude_if=_unset)
    """map: the context key of the list; a child per element."""
    itemKey: str | None = Field(None, min_length=1, max_length=200, exclude_if=_unset)
    """map: the key of each child's element in its context (default "item")."""
    maxConcurrency: int | None = Field(None, ge=1, le=1000, exclude_if=_unset)
    """map: children running at once (default 10)."""
    toleratedFailures: int | Annotated[str, Field(pattern=r"^(100|[1-9]?[0-9])%$")] | None = Field(
        None, exclude_if=_unset
    )
    """map: failed children that still let it succeed: a count or a share ("10%")."""
    resultsKey: str | None = Field(None, min_length=1, max_length=200, exclude_if=_unset)
    """map: the context key of the children's results, in element order; parallel: of the
    branches' final contexts by branch."""
    resultKey: str | None = Field(None, min_length=1, max_length=200, exclude_if=_unset)
    """map: the key of each child's context that is its result (default: its whole context);
    subflow: the key receiving the child's final context."""
    context: dict[str, Any] | None = Field(None, max_length=200, exclude_if=_unset)
    """subflow: the child's context, over the parent's."""
    branches: dict[str, str] | None = Field(None, min_length=1, max_length=50, exclude_if=_unset)
    """parallel: branch name -> the key of its first node."""
    join: Literal["all", "any"] | AtLeast | None = Field(None, exclude_if=_unset)
    """parallel: "all" (default), "any", or {"atLeast": N}."""
    onBranchFailure: Literal["fail", "wait"] | None = Field(None, exclude_if=_unset)
    """parallel: "fail" at once (default; the other branches are canceled) or "wait" for all."""


class DefinitionSpec(Request):
    name: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    nodes: dict[str, NodeSpec] = Field(..., min_length=1, max_length=200)
    concurrency: ConcurrencySpec | None = Field(None, exclude_if=_unset)
    """At most this many flows of the definition running at once per key value; the others
    wait in creation order."""


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
