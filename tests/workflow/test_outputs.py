"""Executors' answers flowlog cannot store (NUL, a lone surrogate, an integer beyond 64 bits,
NaN, an error code out of range): the node fails once with 40134 naming the field, its fail
transition runs, and the executor (or the service an ``http`` executor calls) ran once.

Without the check, such an answer failed the append after every run: the node ran again after
each lease and ended, four runs later, as a lost worker (40110); a polling node polled for a
day."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from flowlog.builtins import definition_from_spec
from flowlog.engine import Engine
from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.errors import Code, NodeError
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.state import FlowState, FlowStatus, NodeStatus
from flowlog.workflow.streams import flow_stream
from tests.engines import StartEngine
from tests.workflow.defs import noop
from tests.workflow.helpers import wait_for_status

ENDED = {FlowStatus.FINISHED, FlowStatus.ERROR, FlowStatus.CANCELED}
PROMPTLY = 5.0
"""Seconds within which a flow must end: less than the 30 s a crashed step was deferred, and
than the two leases (2 s each) of the runs again that ended it with 40110."""
UNSTORABLE = "the executor answered a value flowlog cannot store: "


class Service:
    """A local HTTP service answering raw JSON text (escapes as sent), counting its calls."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.answers: dict[str, str] = {}
        app = web.Application()
        app.router.add_route("*", "/{name}", self.answer)
        self.server = TestServer(app)

    def url(self, name: str, answer: str) -> str:
        self.answers[name] = answer
        return str(self.server.make_url(f"/{name}"))

    async def answer(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.calls[name] += 1
        return web.Response(text=self.answers[name], content_type="application/json")


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    found = Service()
    await found.server.start_server()
    yield found
    await found.server.close()


def http_flow(name: str, executor: dict[str, Any], **node: Any) -> WorkflowDefinition:
    """call (the http node) -> done; a failure runs the handler, and the flow ends in Error."""
    return definition_from_spec(
        {
            "name": name,
            "nodes": {
                "start": {
                    "name": "call",
                    "executor": executor,
                    "success": "done",
                    "fail": "handler",
                    **node,
                },
                "done": {"name": "done", "executor": {"type": "noop"}},
                "handler": {"name": "handler", "executor": {"type": "noop"}},
            },
        }
    )


async def run(engine: Engine, name: str) -> FlowState:
    flow_id = (await engine.service.create("b", "t", name, start=True)).flow_id
    return await wait_for_status(engine.service, flow_id, ENDED, within=PROMPTLY)


def assert_failed_once_through_the_handler(flow: FlowState, field: str) -> None:
    assert flow.status is FlowStatus.ERROR
    assert [(n.name, n.status) for n in flow.nodes] == [
        ("call", NodeStatus.ERROR),
        ("handler", NodeStatus.FINISHED),
    ]
    failed = flow.nodes[0]
    assert failed.attempt == 1
    assert failed.error_code == Code.OUTPUT_UNSTORABLE
    assert failed.error_message is not None
    assert failed.error_message.startswith(UNSTORABLE + field), failed.error_message
    assert failed.result == failed.error_message + "\n"
    # The flow's failure is the node's; nothing of the answer entered the context.
    assert (flow.error_code, flow.error_message) == (failed.error_code, failed.error_message)
    assert set(flow.context) <= {"traceId", "userId", "tenantId"}


SYNC_ANSWERS = [
    ('{"result": "a\\u0000b"}', "result: NUL character"),
    ('{"result": "\\ud800"}', "result: lone surrogate"),
    ('{"context": {"a\\u0000b": 1}}', "context['a\\x00b']: NUL character in the key"),
    ('{"context": {"k": "a\\u0000b"}}', "context['k']: NUL character"),
    ('{"context": {"ok": 1, "k": {"deep": ["x", "\\udc00"]}}}',
     "context['k']['deep'][1]: lone surrogate"),
    ('{"context": {"k": 18446744073709551616}}', "context['k']: integer beyond 64 bits"),
    ('{"context": {"k": NaN}}', "context['k']: NaN or Infinity"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "field"), SYNC_ANSWERS)
async def test_a_sync_http_answer_that_cannot_be_stored_fails_the_node_once(
    start_engine: StartEngine, service: Service, answer: str, field: str
) -> None:
    engine = await start_engine(
        http_flow("hook", {"type": "http", "url": service.url("hook", answer)})
    )

    flow = await run(engine, "hook")

    assert_failed_once_through_the_handler(flow, field)
    assert service.calls["hook"] == 1
    types = [e.type for e in await engine.service.store.read_stream(flow_stream(flow.flow_id))]
    assert types.count("NodeFailed") == 1


POLL_ANSWERS = [
    ('{"status": "failed", "code": 99999999999}', "code: 99999999999 is not a node error code"),
    ('{"status": "failed", "code": -3, "message": "no"}', "code: -3 is not a node error code"),
    ('{"status": "failed", "message": "disk\\u0000full"}', "message: NUL character"),
    ('{"status": "finished", "result": "a\\u0000b"}', "result: NUL character"),
    ('{"status": "finished", "result": "\\ud800"}', "result: lone surrogate"),
]


@pytest.mark.parametrize(("answer", "field"), POLL_ANSWERS)
async def test_a_poll_answer_that_cannot_be_stored_fails_the_node_once(
    start_engine: StartEngine, service: Service, answer: str, field: str
) -> None:
    executor = {
        "type": "http",
        "url": service.url("submit", '{"operationId": "op-1"}'),
        "statusUrl": service.url("status", answer),
    }
    engine = await start_engine(http_flow("poll", executor, kind="polling", pollInterval=0.05))

    flow = await run(engine, "poll")

    assert_failed_once_through_the_handler(flow, field)
    assert flow.nodes[0].operation_id == "op-1"
    assert (service.calls["submit"], service.calls["status"]) == (1, 1)


async def test_an_operation_id_that_cannot_be_stored_fails_the_node_once(
    start_engine: StartEngine, service: Service
) -> None:
    executor = {
        "type": "http",
        "url": service.url("submit", '{"operationId": "op\\u0000"}'),
        "statusUrl": service.url("status", '{"status": "finished"}'),
    }
    engine = await start_engine(http_flow("poll", executor, kind="polling"))

    flow = await run(engine, "poll")

    assert_failed_once_through_the_handler(flow, "operationId: NUL character")
    assert (service.calls["submit"], service.calls["status"]) == (1, 0)


async def test_a_retry_policy_applies_to_an_answer_that_cannot_be_stored(
    start_engine: StartEngine, service: Service
) -> None:
    """The node's retry policy is the user's: such a failure is retried as any other."""
    url = service.url("hook", '{"result": "a\\u0000b"}')
    retry = {"maxAttempts": 2, "initialInterval": 0}
    engine = await start_engine(http_flow("hook", {"type": "http", "url": url}, retry=retry))

    flow = await run(engine, "hook")

    assert [(n.name, n.attempt, n.error_code) for n in flow.nodes] == [
        ("call", 1, Code.OUTPUT_UNSTORABLE),
        ("call", 2, Code.OUTPUT_UNSTORABLE),
        ("handler", 1, None),
    ]
    assert service.calls["hook"] == 2


# -- Python executors --------------------------------------------------------------------------


def python_flow(executor: Any, kind: NodeKind = NodeKind.SYNC) -> WorkflowDefinition:
    return WorkflowDefinition(
        "py",
        {
            "start": NodeDefinition("call", executor, kind=kind, success="done", fail="handler"),
            "done": NodeDefinition("done", noop),
            "handler": NodeDefinition("handler", noop),
        },
    )


class Returns:
    """An executor that does something flowlog cannot store, counting its runs."""

    def __init__(self, act: Any) -> None:
        self.act = act
        self.runs = 0

    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> Any:
        self.runs += 1
        return self.act(node, ctx)


def _set(key: str, value: Any) -> Any:
    def act(node: NodeHandle, ctx: FlowContext) -> None:
        ctx["fine"] = "yes"
        ctx[key] = value

    return act


def _raise(code: int) -> Any:
    def act(node: NodeHandle, ctx: FlowContext) -> None:
        raise NodeError("out of range", code=code)

    return act


def _parameters(node: NodeHandle, ctx: FlowContext) -> None:
    node.parameters = "p\x00"


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


PYTHON_ACTS = [
    (lambda node, ctx: "a\x00b", "result: NUL character"),
    (lambda node, ctx: node.record("ok", "\udfff"), "result: lone surrogate"),
    (_parameters, "parameters: NUL character"),
    (_set("k", 2**64), "context['k']: integer beyond 64 bits"),
    (_set("k", -(2**63) - 1), "context['k']: integer beyond 64 bits"),
    (_set("k", [{"x": float("inf")}]), "context['k'][0]['x']: NaN or Infinity"),
    (_set("k", {1: "a"}), "context['k'][1]: a key that is not text"),
    (_set("k", {"a", "b"}), "context['k']: not JSON"),
    (_set("k", _nested(10_000)), "context['k']: not JSON"),  # the log's encoder stops at 255
    (_set("", 1), "context['']: an empty key"),
    (_raise(2**31), "code: 2147483648 is not a node error code"),
    (_raise(0), "code: 0 is not a node error code"),
]


@pytest.mark.parametrize(("act", "field"), PYTHON_ACTS)
async def test_a_python_executor_answering_what_cannot_be_stored_fails_the_node_once(
    start_engine: StartEngine, act: Any, field: str
) -> None:
    executor = Returns(act)
    engine = await start_engine(python_flow(executor))

    flow = await run(engine, "py")

    assert_failed_once_through_the_handler(flow, field)
    assert executor.runs == 1


async def test_a_timer_whose_time_cannot_be_stored_fails_the_node_once(
    start_engine: StartEngine,
) -> None:
    # A valid aware datetime, but before year 1 in UTC: no timestamptz holds it.
    executor = Returns(lambda node, ctx: datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))
    engine = await start_engine(python_flow(executor, NodeKind.TIMER))

    flow = await run(engine, "py")

    assert_failed_once_through_the_handler(flow, "wakeAt: out of range in UTC")
    assert executor.runs == 1


async def test_storable_answers_are_recorded_as_they_were(
    start_engine: StartEngine, service: Service
) -> None:
    """The limits themselves are storable: 64-bit integers at both ends, any valid text."""
    answer = (
        '{"result": "caf\\u00e9 \\ud83d\\ude00", "context": {"big": 18446744073709551615, '
        '"small": -9223372036854775808, "nested": {"list": [1.5, null, true, "\\u2028"]}}}'
    )
    engine = await start_engine(
        http_flow("hook", {"type": "http", "url": service.url("hook", answer)})
    )

    flow = await run(engine, "hook")

    assert flow.status is FlowStatus.FINISHED
    assert flow.nodes[0].result == "café 😀\n"
    assert flow.context["big"] == 2**64 - 1
    assert flow.context["small"] == -(2**63)
    assert flow.context["nested"] == {"list": [1.5, None, True, "\u2028"]}
    assert (await engine.service.get(flow.flow_id)) == flow  # as read back from the log


# -- a step that crashes all the same ----------------------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


async def test_a_step_that_crashes_says_which_node_and_why(
    start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever else breaks a step is logged with the flow, the node and the exception (the
    node runs again after its lease, and may end as a lost worker's, 40110)."""
    executor = Returns(lambda node, ctx: Unprintable())
    engine = await start_engine(python_flow(executor))
    caplog.set_level(logging.ERROR, logger="flowlog.workflow.reactor")
    flow_id = (await engine.service.create("b", "t", "py", start=True)).flow_id

    def crashed() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "flow step crashed"]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + PROMPTLY
    while not crashed():
        assert loop.time() < deadline, "no crash was logged"
        await asyncio.sleep(0.01)
    [record] = crashed()[:1]
    assert record.__dict__["flow_id"] == flow_id
    assert record.__dict__["node_id"] == f"{flow_id}.1"
    assert record.__dict__["node"] == "call"
    assert record.__dict__["attempt"] == 1
    assert record.__dict__["recording"] is None  # it crashed before it had an outcome
    assert record.exc_info is not None
    assert "no text for you" in str(record.exc_info[1])
