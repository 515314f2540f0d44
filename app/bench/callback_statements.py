"""Statements per callback completion, counted (``flowlog bench callbacks``).

In the benchmark's own process, an engine with a reactor (the same code ``flowlog serve``
runs, without HTTP, whose middleware sends no statement on an open server) counts every
statement its connections send (``flowlog.eventstore.statements``) while it completes paced
callbacks of a definition only it runs (a callback node, then a ``noop`` node): from the
completion's call to the next node's start, which is the second append after it (the first
is the completion's own). Everything the process sends meanwhile counts: the completion's
reads and append, the notification after its commit, the reactor's claim and look at the next
due row, and whatever else woke up.
"""

from __future__ import annotations

import asyncio
import statistics

from flowlog.bench.callbacks_flows import noop
from flowlog.engine import Engine
from flowlog.eventstore.statements import STATEMENTS, count_statements
from flowlog.workflow.definition import NodeDefinition, NodeKind, Registry, WorkflowDefinition
from flowlog.workflow.service import Completion, WorkflowService

COUNTED_FLOW = "bench-callbacks-counted"
APPEND = "WITH -- Appends to many streams"
"""The start of the batch append's text (sql/queries/eventstore.sql): every flow append."""
PACE = 0.05
WITHIN = 10.0


DEFINITION = WorkflowDefinition(
    COUNTED_FLOW,
    {
        "start": NodeDefinition("approve", noop, kind=NodeKind.CALLBACK, success="apply"),
        "apply": NodeDefinition("apply", noop),
    },
)


async def statements_per_completion(url: str, completions: int) -> dict[str, float]:
    """The statements from each of ``completions`` paced completions to its next node's start:
    median, lowest and highest."""
    count_statements()
    try:
        async with Engine(url, Registry([DEFINITION]), migrate=False) as engine:
            service = engine.service
            flows = [
                (await service.create(f"counted-{n}", "bench", COUNTED_FLOW, start=True)).flow_id
                for n in range(completions)
            ]
            counts = []
            for flow_id in flows:
                counts.append(await _one(service, flow_id))
                await _until_finished(service, flow_id)  # the next window starts quiet
    finally:
        STATEMENTS.log = None
        count_statements(False)
    return {
        "statements_per_completion": statistics.median(counts),
        "statements_per_completion_min": min(counts),
        "statements_per_completion_max": max(counts),
    }


async def _one(service: WorkflowService, flow_id: str) -> int:
    token = await _token(service, flow_id)
    await asyncio.sleep(PACE)  # an idle engine, as a paced callback meets it
    log = STATEMENTS.log = []
    await service.complete_callback(Completion(True, token=token))
    deadline = asyncio.get_running_loop().time() + WITHIN
    while asyncio.get_running_loop().time() < deadline:
        appends = [n for n, text in enumerate(log) if text.startswith(APPEND)]
        if len(appends) >= 2:
            STATEMENTS.log = None
            return appends[1] + 1
        await asyncio.sleep(0.001)
    raise RuntimeError(f"the next node of {flow_id} did not start within {WITHIN:.0f} s")


async def _token(service: WorkflowService, flow_id: str) -> str:
    """The callback token, once the flow waits on its callback node."""
    deadline = asyncio.get_running_loop().time() + WITHIN
    while asyncio.get_running_loop().time() < deadline:
        state = await service.get(flow_id)
        token = await service.callback_token(state)
        if token is not None and state.running_node is not None and state.running_node.waiting:
            return token
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{flow_id} did not wait on its callback within {WITHIN:.0f} s")


async def _until_finished(service: WorkflowService, flow_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN
    while asyncio.get_running_loop().time() < deadline:
        if (await service.get(flow_id)).terminal:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{flow_id} did not finish within {WITHIN:.0f} s")
