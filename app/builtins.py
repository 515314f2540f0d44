"""Built-in executors, and definitions made of them from JSON (registered over REST).

A service in any language can define and run flows without Python: each node names a built-in
executor with its settings. The settings are part of the definition's version, and the JSON
is recorded with the definition, so every flowlog process can build the same definition.

``sleep`` and ``until`` on a timer node wait durably (the flow rests in its row, holding no
worker); ``sleep`` on a sync node holds its worker (kept as it was: versions are content
hashes, so its meaning cannot change under running flows).

``http``: a sync node sends ``POST url`` (or ``method``) with the JSON body
``{"flowId", "nodeId", "nodeName", "attempt", "context"}``; a 2xx answer is success (its JSON
may carry ``"result"`` text and ``"context"`` changes), anything else a failure. A polling node
expects ``{"operationId": ...}`` from that call, then polls ``GET statusUrl`` (``{operationId}``
in it is replaced) for ``{"status": "running" | "finished" | "failed", "result", "message",
"code"}``. On a callback node the body also carries ``"callbackToken"``: the service completes
the node with it (POST /api/v1/workflow/callback). An answer flowlog cannot store (NUL, a lone
surrogate, an integer beyond 64 bits, a code out of range) fails the node with 40134: the
reactor judges it with every executor's outcome (``flowlog.workflow.outcomes.storable``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import aiohttp
from pydantic import BaseModel

from flowlog.telemetry import tracing
from flowlog.times import parse_utc
from flowlog.wire.definitions import (
    AtLeast,
    ConcurrencySpec,
    DefinitionSpec,
    FailExecutor,
    HttpExecutor,
    NodeSpec,
    NoopExecutor,
    RateLimitSpec,
    SleepExecutor,
    UntilExecutor,
)
from flowlog.workflow.definition import (
    DEFAULT_MAX_INTERRUPTIONS,
    NodeDefinition,
    NodeKind,
    RetryPolicy,
    WorkflowDefinition,
)
from flowlog.workflow.errors import Code, InvalidDefinition, NodeError
from flowlog.workflow.event_waits import EventWait
from flowlog.workflow.executor import (
    Executor,
    Failed,
    Finished,
    FlowContext,
    NodeHandle,
    PollResult,
    Running,
)
from flowlog.workflow.fanout import DEFAULT_MAX_CONCURRENCY, Children, no_executor
from flowlog.workflow.limits import Concurrency, RateLimit

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
    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> timedelta | None:
        if node.kind == NodeKind.TIMER.value:
            return timedelta(seconds=self.spec.seconds)
        await asyncio.sleep(self.spec.seconds)
        return None


class Until(Builtin[UntilExecutor]):
    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> datetime:
        if self.spec.at is not None:
            return self.spec.at
        key = self.spec.contextKey
        assert key is not None
        value = ctx.get(key)
        if not isinstance(value, str):
            raise NodeError(f"context key {key!r} holds {value!r}, not an ISO 8601 time")
        try:
            return parse_utc(value)
        except ValueError as exc:
            raise NodeError(f"context key {key!r}: {exc}") from None


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
        if node.callback_token is not None:
            body["callbackToken"] = node.callback_token
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
        headers: dict[str, str] = {}
        tracing().inject(headers)  # the called service joins the node's trace
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, json=body, headers=headers) as response,
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


def _executor(
    spec: NoopExecutor | SleepExecutor | UntilExecutor | FailExecutor | HttpExecutor,
) -> Executor:
    match spec:
        case NoopExecutor():
            return Noop(spec)
        case SleepExecutor():
            return Sleep(spec)
        case UntilExecutor():
            return Until(spec)
        case FailExecutor():
            return Fail(spec)
        case HttpExecutor():
            return Http(spec)


_SYNC_SLEEP_LIMIT = 86_400.0


_CHILD_SETTINGS = (
    "flow", "items", "itemKey", "maxConcurrency", "toleratedFailures", "resultsKey",
    "resultKey", "context", "branches", "join", "onBranchFailure",
)  # fmt: skip


def _polling_problem(key: str, spec: NodeSpec) -> str | None:
    # Rules across two fields, so the OpenAPI schema cannot say them; the 400 does.
    executor = spec.executor
    if spec.kind in ("map", "parallel", "subflow"):
        if executor is not None:
            return f"node {key!r}: a {spec.kind} node runs no executor (its children are its work)"
        return None
    if spec.queue is not None:
        return _queue_problem(key, spec)
    if executor is None and not (spec.kind == "callback" and spec.event is not None):
        return f"node {key!r}: a {spec.kind} node needs an executor"
    given = [name for name in _CHILD_SETTINGS if getattr(spec, name) is not None]
    if given:
        return f"node {key!r}: {', '.join(given)} belong on a map, parallel or subflow node"
    if spec.kind == "polling" and (
        not isinstance(executor, HttpExecutor) or executor.statusUrl is None
    ):
        return f"node {key!r}: a polling node needs an http executor with a statusUrl"
    timed = isinstance(executor, SleepExecutor | UntilExecutor)
    if spec.kind == "timer" and not timed:
        return f"node {key!r}: a timer node needs a sleep or until executor"
    if isinstance(executor, UntilExecutor) and spec.kind != "timer":
        return f"node {key!r}: an until executor belongs on a timer node"
    if spec.kind == "callback" and not isinstance(executor, NoopExecutor | HttpExecutor | None):
        return f"node {key!r}: a callback node needs a noop or http executor"
    if (
        isinstance(executor, SleepExecutor)
        and spec.kind == "sync"
        and executor.seconds > _SYNC_SLEEP_LIMIT
    ):
        return f"node {key!r}: a sync node sleeps at most a day (a timer node waits longer)"
    if spec.deadline is not None and spec.kind != "callback":
        return f"node {key!r}: only a callback node has a deadline"
    if spec.event is not None and spec.kind != "callback":
        return f"node {key!r}: only a callback node waits for an event"
    return None


def _queue_problem(key: str, spec: NodeSpec) -> str | None:
    if spec.kind not in ("sync", "polling"):
        return f"node {key!r}: a {spec.kind} node cannot be offered on a queue"
    if spec.executor is not None:
        return f"node {key!r}: a node offered on a queue takes no executor (a worker runs it)"
    given = [name for name in _CHILD_SETTINGS if getattr(spec, name) is not None]
    if given or spec.deadline is not None:
        return f"node {key!r}: {', '.join(given) or 'deadline'} do not belong on a queue's node"
    return None


def _node(spec: NodeSpec, pollable: bool) -> NodeDefinition:
    """The node a spec describes; one that cannot poll (``pollable`` false, a problem already
    reported) is built as a sync node, so that the rest of the definition is still checked."""
    if spec.kind in ("map", "parallel", "subflow") and pollable:
        return NodeDefinition(spec.name, success=spec.success, fail=spec.fail,
                              kind=NodeKind(spec.kind), children=_children(spec))  # fmt: skip
    executor = spec.executor or NoopExecutor(type="noop")
    polls = spec.kind == "polling" and pollable and isinstance(executor, HttpExecutor)
    remote = spec.queue is not None and pollable
    if remote:
        polls = spec.kind == "polling"
    return NodeDefinition(
        name=spec.name,
        executor=no_executor if remote else _executor(executor),
        queue=spec.queue if remote else None,
        success=spec.success,
        fail=spec.fail,
        kind=NodeKind.POLLING if polls else _kind(spec, pollable),
        poll=HttpPoll(executor)
        if polls and not remote and isinstance(executor, HttpExecutor)
        else None,
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
        deadline=spec.deadline if pollable else None,
        event=None if spec.event is None else EventWait(spec.event.type, spec.event.match),
    )


def _children(spec: NodeSpec) -> Children:
    join = spec.join.atLeast if isinstance(spec.join, AtLeast) else spec.join
    return Children(
        flow=spec.flow or "",
        items=spec.items or "",
        item_key=spec.itemKey or "item",
        max_concurrency=spec.maxConcurrency or DEFAULT_MAX_CONCURRENCY,
        tolerated_failures=0 if spec.toleratedFailures is None else spec.toleratedFailures,
        results_key=spec.resultsKey or "",
        result_key=spec.resultKey or "",
        context=spec.context or {},
        branches=spec.branches or {},
        join=join or "all",
        on_branch_failure=spec.onBranchFailure or "fail",
    )


def _concurrency(spec: ConcurrencySpec | None) -> Concurrency | None:
    return None if spec is None else Concurrency(spec.key, spec.limit)


def _rate(spec: RateLimitSpec | None) -> RateLimit | None:
    return None if spec is None else RateLimit(spec.key, spec.limit, spec.periodSeconds)


def _kind(spec: NodeSpec, sound: bool) -> NodeKind:
    if sound and spec.kind in ("timer", "callback"):
        return NodeKind(spec.kind)
    return NodeKind.SYNC


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
    for key, node in parsed.nodes.items():
        nodes[key] = dataclasses.replace(
            nodes[key], concurrency=_concurrency(node.concurrency), rate_limit=_rate(node.rateLimit)
        )
    try:  # every problem in one answer: the nodes' own, and the graph's
        definition = WorkflowDefinition(
            parsed.name, nodes, spec=parsed.model_dump(mode="json"),
            concurrency=_concurrency(parsed.concurrency),
        )  # fmt: skip
    except InvalidDefinition as exc:
        raise InvalidDefinition(parsed.name, problems + exc.problems) from None
    if problems:
        raise InvalidDefinition(parsed.name, problems)
    return definition
