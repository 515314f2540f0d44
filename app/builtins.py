"""Built-in executors, and definitions made of them from JSON (registered over REST).

A service in any language can define and run flows without Python: each node names a built-in
executor with its settings. The settings are part of the definition's version, and the JSON
is recorded with the definition, so every flowlog process can build the same definition.

``http``: a sync node sends ``POST url`` (or ``method``) with the JSON body
``{"flowId", "nodeId", "nodeName", "attempt", "context"}``; a 2xx answer is success (its JSON
may carry ``"result"`` text and ``"context"`` changes), anything else a failure. A polling node
expects ``{"operationId": ...}`` from that call, then polls ``GET statusUrl`` (``{operationId}``
in it is replaced) for ``{"status": "running" | "finished" | "failed", "result", "message",
"code"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import aiohttp
from pydantic import BaseModel

from app.api.models import (
    DefinitionSpec,
    FailExecutor,
    HttpExecutor,
    NodeSpec,
    NoopExecutor,
    SleepExecutor,
)
from app.workflow.definition import (
    DEFAULT_MAX_INTERRUPTIONS,
    NodeDefinition,
    NodeKind,
    RetryPolicy,
    WorkflowDefinition,
)
from app.workflow.errors import Code, InvalidDefinition, NodeError
from app.workflow.executor import (
    Executor,
    Failed,
    Finished,
    FlowContext,
    NodeHandle,
    PollResult,
    Running,
)

_HTTP_TIMEOUT = 30.0
_BODY_EXCERPT = 300


S = TypeVar("S", bound=BaseModel)


class Builtin(Generic[S]):
    """A configured built-in executor: ``describe()`` is what the version hashes."""

    def __init__(self, spec: S) -> None:
        self.spec = spec

    def describe(self) -> dict[str, Any]:
        return self.spec.model_dump(exclude_none=True)


class Noop(Builtin[NoopExecutor]):
    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> None:
        return None


class Sleep(Builtin[SleepExecutor]):
    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> None:
        await asyncio.sleep(self.spec.seconds)


class Fail(Builtin[FailExecutor]):
    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> None:
        raise NodeError(
            self.spec.message or "failed on purpose", self.spec.code or Code.NODE_FAILED
        )


class Http(Builtin[HttpExecutor]):
    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> str | None:
        body = {
            "flowId": node.flow_id,
            "nodeId": node.id,
            "nodeName": node.name,
            "attempt": node.attempt,
            "context": dict(ctx),
        }
        answer = await _call(self.spec.method, self.spec.url, body)
        for key, value in (answer.get("context") or {}).items():
            ctx[str(key)] = value
        if node.kind == NodeKind.POLLING.value:
            operation = answer.get("operationId")
            if not isinstance(operation, str) or not operation:
                raise NodeError(f"{self.spec.url} answered without an operationId")
            return operation
        if answer.get("result") is not None:
            node.record(answer["result"])
        return None


class HttpPoll(Builtin[HttpExecutor]):
    async def __call__(self, node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
        assert self.spec.statusUrl is not None
        answer = await _call("GET", self.spec.statusUrl.replace("{operationId}", operation_id))
        status = answer.get("status")
        if status == "running":
            return Running()
        if status == "finished":
            result = answer.get("result")
            return Finished(None if result is None else str(result))
        if status == "failed":
            return Failed(str(answer.get("message") or "the operation failed"),
                          int(answer.get("code") or Code.NODE_FAILED))  # fmt: skip
        raise NodeError(f"status of {operation_id}: unknown answer {answer!r}")


async def _call(method: str, url: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=_HTTP_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, json=body) as response,
        ):
            text = await response.text()
            if response.status >= 300:
                raise NodeError(
                    f"{method} {url} answered {response.status}: {text[:_BODY_EXCERPT]}"
                )
            if not text.strip():
                return {}
            answer = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise NodeError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(answer, dict):
        raise NodeError(f"{method} {url} answered {answer!r}, not a JSON object")
    return answer


def _executor(spec: NoopExecutor | SleepExecutor | FailExecutor | HttpExecutor) -> Executor:
    match spec:
        case NoopExecutor():
            return Noop(spec)
        case SleepExecutor():
            return Sleep(spec)
        case FailExecutor():
            return Fail(spec)
        case HttpExecutor():
            return Http(spec)


def _polling_problem(key: str, spec: NodeSpec) -> str | None:
    # A rule across two fields, so the OpenAPI schema cannot say it; the 400 does.
    executor = spec.executor
    if spec.kind == "polling" and (
        not isinstance(executor, HttpExecutor) or executor.statusUrl is None
    ):
        return f"node {key!r}: a polling node needs an http executor with a statusUrl"
    return None


def _node(spec: NodeSpec, pollable: bool) -> NodeDefinition:
    """The node a spec describes; one that cannot poll (``pollable`` false, a problem already
    reported) is built as a sync node, so that the rest of the definition is still checked."""
    executor = spec.executor
    polls = spec.kind == "polling" and pollable and isinstance(executor, HttpExecutor)
    return NodeDefinition(
        name=spec.name,
        executor=_executor(executor),
        success=spec.success,
        fail=spec.fail,
        kind=NodeKind.POLLING if polls else NodeKind.SYNC,
        poll=HttpPoll(executor) if polls and isinstance(executor, HttpExecutor) else None,
        poll_interval=spec.pollInterval,
        poll_deadline=spec.pollDeadline,
        timeout=spec.timeout,
        retry=RetryPolicy(
            max_attempts=spec.retry.maxAttempts,
            initial_interval=spec.retry.initialInterval,
            backoff=spec.retry.backoff,
            max_interval=spec.retry.maxInterval,
        ),
        max_interruptions=(
            DEFAULT_MAX_INTERRUPTIONS if spec.maxInterruptions is None else spec.maxInterruptions
        ),
    )


def definition_from_spec(spec: DefinitionSpec | Mapping[str, Any]) -> WorkflowDefinition:
    """The definition a JSON spec describes (validated; raises InvalidDefinition)."""
    parsed = spec if isinstance(spec, DefinitionSpec) else DefinitionSpec.model_validate(spec)
    problems: list[str] = []
    nodes: dict[str, NodeDefinition] = {}
    for key, node in parsed.nodes.items():
        problem = _polling_problem(key, node)
        if problem is not None:
            problems.append(problem)
        nodes[key] = _node(node, pollable=problem is None)
    try:  # every problem in one answer: the nodes' own, and the graph's
        definition = WorkflowDefinition(parsed.name, nodes, spec=parsed.model_dump(mode="json"))
    except InvalidDefinition as exc:
        raise InvalidDefinition(parsed.name, problems + exc.problems) from None
    if problems:
        raise InvalidDefinition(parsed.name, problems)
    return definition
