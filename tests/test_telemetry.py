"""OpenTelemetry (docs/telemetry.md): one trace from the request that creates a flow through
every node, across the serving process and a worker process, and into the service an ``http``
node calls; nothing at all without configuration."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowlog import telemetry
from flowlog.config import Settings
from flowlog.roles import DatabaseUrls
from flowlog.web import create_app
from tests.helpers import serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
    ],
)
def test_tracing_is_on_only_when_the_environment_asks(env: dict[str, str], wanted: bool) -> None:
    assert telemetry.wanted(env) is wanted


def test_without_configuration_no_opentelemetry_module_is_imported() -> None:
    code = (
        "import sys, flowlog.cli, flowlog.web, flowlog.workflow.reactor, flowlog.builtins\n"
        "import flowlog.telemetry as t\n"
        "assert not t.configure({}) and not t.tracing().enabled\n"
        "assert t.tracing().traceparent() is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
async def downstream() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A service an ``http`` node calls; it keeps each call's headers."""
    calls: list[dict[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        calls.append(dict(request.headers))
        return web.json_response({"result": "called"})

    app = web.Application()
    app.router.add_post("/hook", answer)
    async with serving(app) as base:
        yield f"{base}/hook", calls


def _spans(printed: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (JSON documents one after another)."""
    decoder = json.JSONDecoder()
    spans, at = [], 0
    while (at := printed.find("{", at)) != -1:
        span, at = decoder.raw_decode(printed, at)
        spans.append(span)
    return spans


async def test_one_trace_from_the_create_request_through_every_node_across_processes(
    database_url: str, runtime_url: str, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    hook, calls = downstream
    exporter = InMemorySpanExporter()
    assert telemetry.configure({}, exporter=exporter)
    settings = Settings.from_env({}).model_copy(update={"run_reactor": False})  # the API alone
    app = create_app(settings, DatabaseUrls(runtime_url, database_url))
    worker: asyncio.subprocess.Process | None = None
    try:
        async with TestClient(TestServer(app)) as client:
            definition = {
                "name": "traced",
                "nodes": {
                    "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "call"},
                    "call": {"name": "notify", "success": "end",
                             "executor": {"type": "http", "url": hook}},
                    "end": {"name": "finish", "executor": {"type": "noop"}},
                },
            }  # fmt: skip
            assert (
                await client.post("/api/v1/workflow-definitions", json=definition)
            ).status == 200
            env = {
                **os.environ, "DATABASE_URL": runtime_url, "FLOWLOG_OWNER_URL": database_url,
                "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "flowlog-worker",
                "FLOWLOG_LOG_LEVEL": "WARNING",
            }  # fmt: skip
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowlog.cli", "worker", cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
            created = await client.post(
                "/api/v1/workflow/",
                json={"flowName": "traced", "bizId": "b", "bizType": "t", "start": True},
                headers={"traceparent": traceparent},
            )
            assert created.status == 200
            flow_id = (await created.json())["data"]["workFlowId"]
            async with asyncio.timeout(60):
                while True:
                    detail = await (await client.get(f"/api/v1/workflow/{flow_id}")).json()
                    if detail["data"]["info"]["status"] == "Finished":
                        break
                    await asyncio.sleep(0.1)
            history = await (await client.get(f"/api/v1/workflow/{flow_id}/events")).json()
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            printed, _ = await worker.communicate()
        assert worker.returncode == 0
    finally:
        if worker is not None and worker.returncode is None:
            worker.kill()
            await worker.wait()
        telemetry.reset()

    (request_span,) = [s for s in exporter.get_finished_spans()
                       if s.name == "POST /api/v1/workflow/"]  # fmt: skip
    request = request_span.get_span_context()
    assert f"{request.trace_id:032x}" == TRACE_ID
    assert request_span.parent is not None
    assert f"{request_span.parent.span_id:016x}" == CLIENT_SPAN
    request_id = f"{request.span_id:016x}"
    # The request's trace context is in the events it appended, and is the request's trace id.
    created_event = history["data"]["events"][0]
    assert created_event["metadata"]["traceparent"] == f"00-{TRACE_ID}-{request_id}-01"
    assert created_event["traceId"] == TRACE_ID

    nodes = [s for s in _spans(printed.decode()) if s["name"].startswith("node ")]
    assert [s["name"] for s in nodes] == ["node prepare", "node notify", "node finish"]
    for span in nodes:
        assert span["context"]["trace_id"] == f"0x{TRACE_ID}"
        assert span["parent_id"] == f"0x{request_id}"  # children of the creating request
        assert span["resource"]["attributes"]["service.name"] == "flowlog-worker"
        attributes = span["attributes"]
        assert attributes["flowlog.flow_id"] == flow_id
        assert attributes["flowlog.attempt"] == 1
        assert attributes["flowlog.outcome"] == "success"
    # The http node's call carried its span's context to the service it called.
    (call,) = calls
    notify = nodes[1]["context"]["span_id"].removeprefix("0x")
    assert call["traceparent"] == f"00-{TRACE_ID}-{notify}-01"
