"""Definitions on the wire: one made of built-in executors, as a client registers it (JSON;
app/builtins.py builds the definition from it), and the versions the log holds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from flowlog.wire.base import IsoDatetime, Request, Response


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
