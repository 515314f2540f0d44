"""A flow's past: its events (paged, or streamed as Server-Sent Events until it ends), its
state at a version or a time, and what changed between two points of its history."""

from __future__ import annotations

from functools import partial

import asyncpg
import orjson
from aiohttp import web

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import named_flow
from flowlog.api.context import context_of
from flowlog.api.operations import Api, Paged
from flowlog.api.replicas import read_pool
from flowlog.api.sse import notices
from flowlog.audit.document import state_document
from flowlog.audit.history import read_history
from flowlog.audit.points import parse_point
from flowlog.audit.replay import diff_documents, fold_until
from flowlog.eventstore import EventReader, RecordedEvent
from flowlog.wire.envelope import Page
from flowlog.wire.history import (
    STREAM_ENDS,
    Change,
    DiffQuery,
    DiffResponse,
    HistoryEvent,
    HistoryQuery,
    HistoryResponse,
    StateQuery,
    StateResponse,
)
from flowlog.workflow.errors import Code, FlowNotFound, WorkflowError
from flowlog.workflow.state import TERMINAL
from flowlog.workflow.streams import flow_stream

api = Api()
FLOWS = ("workflow",)


@api.route(
    "GET",
    "/api/v1/workflow/{workFlowId}/events",
    summary="A flow's event history, oldest first, paged",
    query=HistoryQuery,
    response=HistoryResponse,
    paged=True,
    errors=(400, 404, 410),
    tags=FLOWS,
    role=Role.VIEWER,
)
async def flow_history(request: web.Request, workFlowId: str, query: HistoryQuery) -> Paged:
    pool = await read_pool(request)
    row = await named_flow(request, workFlowId, pool)
    first = (query.page - 1) * query.pageSize + 1
    lines = await read_history(pool, workFlowId, first, first + query.pageSize - 1)
    total = max(row.stream_version, lines[-1].version if lines else 0)
    events = [HistoryEvent.model_validate(line.document()) for line in lines]
    return Paged(
        HistoryResponse(events=events), Page(page=query.page, pageSize=query.pageSize, total=total)
    )


@api.route(
    "GET",
    "/api/v1/workflow/{workFlowId}/state",
    summary="A flow's state at a version or a time, folded from its history (default: now)",
    query=StateQuery,
    response=StateResponse,
    errors=(400, 404, 410),
    tags=FLOWS,
    role=Role.VIEWER,
)
async def flow_state(request: web.Request, workFlowId: str, query: StateQuery) -> StateResponse:
    recorded = await _recorded(request, workFlowId)
    if query.version is not None:
        if query.version > recorded[-1].version:
            raise WorkflowError(
                Code.BAD_INPUT, f"the flow has {recorded[-1].version} events, not {query.version}"
            )
        recorded = recorded[: query.version]
    state = fold_until(recorded, query.at)
    if state is None:
        raise WorkflowError(Code.BAD_INPUT, f"the flow did not exist yet at {query.at}")
    return StateResponse.model_validate(state_document(state))


@api.route(
    "GET",
    "/api/v1/workflow/{workFlowId}/diff",
    summary="What changed in a flow between two points of its history",
    query=DiffQuery,
    response=DiffResponse,
    errors=(400, 404, 410),
    tags=FLOWS,
    role=Role.VIEWER,
)
async def flow_diff(request: web.Request, workFlowId: str, query: DiffQuery) -> DiffResponse:
    recorded = await _recorded(request, workFlowId)
    try:
        since, until = parse_point(query.since), parse_point(query.until)
    except ValueError as exc:
        raise WorkflowError(Code.BAD_INPUT, str(exc)) from None
    before, after = fold_until(recorded, since), fold_until(recorded, until)
    if after is None:
        raise WorkflowError(Code.BAD_INPUT, f"the flow did not exist yet at {query.until}")
    changes = diff_documents(
        None if before is None else state_document(before), state_document(after)
    )
    return DiffResponse(
        changes=[Change(where=c.where, before=c.before, after=c.after) for c in changes]
    )


async def _recorded(request: web.Request, flow_id: str) -> list[RecordedEvent]:
    """The flow's stored events, if the caller may see the flow."""
    pool = await read_pool(request)
    await named_flow(request, flow_id, pool)
    recorded = await EventReader(pool).read_stream(flow_stream(flow_id))
    if not recorded:
        raise FlowNotFound(flow_id)
    return recorded


@api.route(
    "GET",
    "/api/v1/workflow/{workFlowId}/events/stream",
    summary="A flow's events as "
    "Server-Sent Events: the history, then each new event until the flow ends",
    query=HistoryQuery,
    response=None,
    raw=True,
    errors=(400, 404, 410),
    media_type="text/event-stream",
    tags=FLOWS,
    role=Role.VIEWER,
)
async def flow_stream_sse(
    request: web.Request,
    workFlowId: str,
    query: HistoryQuery,
) -> web.StreamResponse:
    row = await named_flow(request, workFlowId, await read_pool(request))
    engine = request.app[keys.ENGINE]
    stream = flow_stream(workFlowId)
    last = (query.page - 1) * query.pageSize  # events already seen by the client
    resume = request.headers.get("Last-Event-ID", "")
    if resume.isdigit():
        last = max(last, int(resume))
    if last >= row.stream_version and row.status in TERMINAL:
        # The client saw the flow end (an EventSource reconnects after the last event): no
        # end event would come to close the stream; 204 tells an EventSource to stop.
        return web.Response(status=204)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Request-Id": context_of(request).request_id,
        }
    )
    await response.prepare(request)
    try:
        async with notices(request, response) as heard:
            while not heard.over:
                heard.commits.clear()
                # Woken by a commit's NOTIFY: a replica answers once it has replayed that commit.
                stored = await engine.reads.run(
                    partial(_read_stream, stream=stream, after=last + 1), await engine.reads.fresh()
                )
                for event in stored:
                    await response.write(_message(event))
                    last = event.version
                    if event.type in STREAM_ENDS and event is stored[-1]:
                        # Ended, as of now (an Error flow's history may go on: a retry).
                        return response
                await heard.wait()
        # The server is stopping: the client reconnects (Last-Event-ID) to another instance.
        return response
    except ConnectionError:
        return response  # the client went away (a closed tab): nothing to tell anyone


async def _read_stream(pool: asyncpg.Pool, *, stream: str, after: int) -> list[RecordedEvent]:
    return await EventReader(pool).read_stream(stream, after)


def _message(event: RecordedEvent) -> bytes:
    payload = orjson.dumps(
        {
            "version": event.version,
            "type": event.type,
            "time": event.recorded_at,
            "data": event.data,
            "metadata": event.metadata,
        }
    )
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.version, event.type.encode(), payload)
