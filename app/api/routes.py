"""The API's operations: the seed's four workflow routes, and everything around them."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC
from functools import partial
from typing import Any

import aiohttp_jinja2
import asyncpg
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from flowlog import keys
from flowlog.api.bulk import run_bulk
from flowlog.api.framework import Api, Context, Paged, context_of, json_response
from flowlog.api.metrics import Q as MQ
from flowlog.api.models import (
    BulkRequest,
    BulkResponse,
    CallbackRequest,
    CancelRequest,
    Change,
    ContextRequest,
    CreatedResponse,
    CreateRequest,
    DefinitionDetail,
    DefinitionList,
    DefinitionSpec,
    DefinitionSummary,
    DefinitionVersion,
    DiffQuery,
    DiffResponse,
    Empty,
    FlowFilter,
    Health,
    HistoryEvent,
    HistoryQuery,
    HistoryResponse,
    InfoResponse,
    ListQuery,
    Page,
    Readiness,
    Ready,
    RegisteredResponse,
    ReplicaHealth,
    RetryRequest,
    StateQuery,
    StateResponse,
    StopRequest,
    WaitingInfo,
    WorkFlowDetail,
    WorkFlowIdRequest,
    WorkFlowInfo,
    WorkFlowList,
    WorkFlowNodeInfo,
)
from flowlog.archive.reading import not_here
from flowlog.audit.document import state_document
from flowlog.audit.history import read_history
from flowlog.audit.replay import diff_documents, fold_until, parse_point
from flowlog.builtins import definition_from_spec
from flowlog.eventstore import EventReader, RecordedEvent, wait_any
from flowlog.eventstore.pool import Executor
from flowlog.flow_ids import NOT_A_FLOW_ID, is_flow_id
from flowlog.projections.reads import BadCursor, Cursor, ListFilter, get_workflow, list_workflows
from flowlog.projections.rows import NodeRow, WorkflowRow
from flowlog.replicas.http import read_pool
from flowlog.replicas.position import format_position
from flowlog.storable import storable_text
from flowlog.telemetry import tracing
from flowlog.workflow.errors import Code, DefinitionNotFound, FlowNotFound, WorkflowError
from flowlog.workflow.history import flow_stream
from flowlog.workflow.projection import workflow_row
from flowlog.workflow.repository import Caller
from flowlog.workflow.service import Completion, WorkFlowService
from flowlog.workflow.state import FlowState

api = Api()
FLOWS = ("workflow",)
DEFINITIONS = ("definitions",)
OPS = ("operations",)
_KEEPALIVE = 15.0
_ENDED = frozenset({"FlowFinished", "FlowFailed", "FlowCanceled"})
_ENDED_STATUSES = frozenset({"Finished", "Error", "Canceled"})


def _service(request: web.Request) -> WorkFlowService:
    return request.app[keys.ENGINE].service


def caller_of(ctx: Context, reason: str = "") -> Caller:
    return Caller(
        actor=ctx.actor,
        trace_id=ctx.trace_id,
        request_id=ctx.request_id,
        reason=reason or None,
        idempotency=ctx.idempotency,
        traceparent=tracing().traceparent(),
    )


def _scoped(request: web.Request) -> bool:
    return request.app[keys.TOKENS].enabled


async def _visible(request: web.Request, flow_id: str, pool: Executor | None = None) -> WorkflowRow:
    """The flow's row, if the caller may see it (other tenants' flows do not exist for it),
    read from ``pool`` (a read's replica; by default the primary, where commands look)."""
    if not is_flow_id(flow_id):  # a path's id (bodies' are checked by their models)
        raise WorkflowError(Code.BAD_INPUT, f"workFlowId: {NOT_A_FLOW_ID}")
    executor = pool or request.app[keys.ENGINE].pool
    row = await get_workflow(executor, flow_id)
    if row is None:
        raise await not_here(executor, flow_id, tenant_of(request))
    if _scoped(request) and row.tenant_id != context_of(request).tenant_id:
        raise FlowNotFound(flow_id)
    return row


def _info_response(state: FlowState) -> InfoResponse:
    """The flow as the command left it: the same row the append projected (its fold), and the
    same again when an idempotent request is answered a second time."""
    return InfoResponse(info=info_of(workflow_row(state)))


def info_of(row: WorkflowRow) -> WorkFlowInfo:
    return WorkFlowInfo(
        id=row.id,
        name=row.name,
        bizId=row.biz_id,
        bizType=row.biz_type,
        status=row.status,
        createTime=row.created_at,
        updateTime=row.updated_at,
        tenantId=row.tenant_id,
        definitionVersion=row.definition_version,
        errorCode=row.error_code,
        errorMessage=row.error_message,
    )


def node_of(row: NodeRow) -> WorkFlowNodeInfo:
    extra: dict[str, Any] = {} if row.end_time is None else {"endTime": row.end_time}
    return WorkFlowNodeInfo(
        id=row.id,
        name=row.name,
        parameters=row.parameters or "",
        result=row.result,
        status=row.status,
        startTime=row.start_time,
        key=row.node_key,
        attempt=row.attempt,
        operationId=row.operation_id or "",
        errorCode=row.error_code,
        errorMessage=row.error_message,
        **extra,
    )


# -- the seed's routes -------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/workflow/",
    summary="List flows (newest first)",
    query=ListQuery,
    response=WorkFlowList,
    paged=True,
    tags=FLOWS,
)
async def list_flows(request: web.Request, query: ListQuery) -> Paged:
    where = list_filter(query, tenant_of(request))
    after = parse_cursor(query.cursor) if query.cursor else None
    page = await list_workflows(
        await read_pool(request),
        where,
        page=query.page,
        page_size=query.pageSize,
        after=after,
    )
    data = WorkFlowList(workFlows=[info_of(r) for r in page.rows], nextCursor=page.next_cursor)
    return Paged(data, Page(page=query.page, pageSize=query.pageSize, total=page.total))


def tenant_of(request: web.Request) -> str | None:
    """The tenant whose flows the caller sees, or None: every flow (tokens are off)."""
    return context_of(request).tenant_id if _scoped(request) else None


def list_filter(selection: FlowFilter, tenant: str | None) -> ListFilter:
    return ListFilter(
        status=selection.status,
        name=selection.flowName,
        biz_id=selection.bizId,
        biz_type=selection.bizType,
        tenant_id=tenant,
        created_from=selection.createdFrom,
        created_to=selection.createdTo,
    )


def parse_cursor(text: str) -> Cursor:
    """A list cursor, or 400: a forged one may hold what the database refuses (a time out of
    range in UTC, NUL in the id)."""
    try:
        cursor = Cursor.decode(text)
        cursor.created_at.astimezone(UTC)
    except (BadCursor, OverflowError):
        cursor = None
    if cursor is None or not storable_text(cursor.id):
        raise WorkflowError(Code.BAD_INPUT, f"not a paging cursor: {text!r}")
    return cursor


@api.route(
    "GET",
    "/api/v1/workflow/{workFlowId}",
    summary="A flow, its node executions and its definition's node names",
    response=WorkFlowDetail,
    errors=(404, 410),
    tags=FLOWS,
)
async def detail_flow(request: web.Request, workFlowId: str) -> WorkFlowDetail:
    pool = await read_pool(request)
    await _visible(request, workFlowId, pool)
    detail = await _service(request).detail_workflow(workFlowId, pool)
    last = detail.nodes[-1] if detail.nodes else None
    waiting = None
    if last is not None and last.status == "Processing" and last.kind in ("timer", "callback"):
        waiting = await _waiting(_service(request), workFlowId)
    return WorkFlowDetail(
        info=info_of(detail.info),
        nodes=[node_of(n) for n in detail.nodes],
        nodeNames=detail.node_names,
        waiting=waiting,
    )


async def _waiting(service: WorkFlowService, flow_id: str) -> WaitingInfo | None:
    """What the flow waits on, from its state (the rows do not hold a timer's time); the
    callback's token only for whoever may see the flow."""
    state = await service.get(flow_id)
    running = state.running_node
    if running is None or not running.waiting:
        return None  # its action still runs: it waits once that has returned
    return WaitingInfo(
        nodeId=running.node_id,
        name=running.name,
        kind="timer" if running.kind == "timer" else "callback",
        wakeAt=running.wake_at,
        deadline=running.deadline,
        callbackToken=await service.callback_token(state),
    )


@api.route(
    "POST",
    "/api/v1/workflow/start",
    summary="Start (or resume) a flow; returns at once",
    body=WorkFlowIdRequest,
    response=Empty,
    errors=(400, 404, 410, 409),
    tags=FLOWS,
)
async def start_flow(request: web.Request, body: WorkFlowIdRequest) -> Empty:
    await _visible(request, body.workFlowId)
    await _service(request).start(body.workFlowId, caller_of(context_of(request), body.reason))
    return Empty()


@api.route(
    "POST",
    "/api/v1/workflow/stop",
    summary="Stop (pause) a flow: a running node finishes, nothing further runs until start",
    body=StopRequest,
    response=Empty,
    errors=(400, 404, 410, 409),
    tags=FLOWS,
)
async def stop_flow(request: web.Request, body: StopRequest) -> Empty:
    await _visible(request, body.workFlowId)
    ctx = context_of(request)
    await _service(request).stop(body.workFlowId, body.reason, caller_of(ctx, body.reason))
    return Empty()


# -- beyond the seed ---------------------------------------------------------------------------


@api.route(
    "POST",
    "/api/v1/workflow/",
    summary="Create a flow; with start: true it starts in the same append",
    body=CreateRequest,
    response=CreatedResponse,
    errors=(400, 404, 410),
    tags=FLOWS,
)
async def create_flow(request: web.Request, body: CreateRequest) -> CreatedResponse:
    ctx = context_of(request)
    state = await _service(request).create(
        body.bizId,
        body.bizType,
        body.flowName,
        context=body.context,
        caller=caller_of(ctx),
        tenant_id=ctx.tenant_id,
        user_id=ctx.actor,
        start=body.start,
        visible_to=tenant_of(request),
    )
    return CreatedResponse(workFlowId=state.flow_id, info=info_of(workflow_row(state)))


@api.route(
    "POST",
    "/api/v1/workflow/cancel",
    summary="Cancel a flow (a running node is interrupted)",
    body=CancelRequest,
    response=InfoResponse,
    errors=(400, 404, 410, 409),
    tags=FLOWS,
)
async def cancel_flow(request: web.Request, body: CancelRequest) -> InfoResponse:
    await _visible(request, body.workFlowId)
    ctx = context_of(request)
    state = await _service(request).cancel(
        body.workFlowId, body.reason, caller_of(ctx, body.reason)
    )
    return _info_response(state)


@api.route(
    "POST",
    "/api/v1/workflow/context",
    summary="Set one key of a flow's context",
    body=ContextRequest,
    response=InfoResponse,
    errors=(400, 404, 410, 409),
    tags=FLOWS,
)
async def set_context(request: web.Request, body: ContextRequest) -> InfoResponse:
    await _visible(request, body.workFlowId)
    state = await _service(request).init_context(
        body.workFlowId, body.key, body.value, caller_of(context_of(request), body.reason)
    )
    return _info_response(state)


@api.route(
    "POST",
    "/api/v1/workflow/retry",
    summary="Retry a flow that ended in Error (or "
    "stopped on a failed node) from that node, after context changes",
    body=RetryRequest,
    response=InfoResponse,
    errors=(400, 404, 410, 409),
    tags=FLOWS,
)
async def retry_flow(request: web.Request, body: RetryRequest) -> InfoResponse:
    await _visible(request, body.workFlowId)
    ctx = context_of(request)
    caller = caller_of(ctx, body.reason)
    state = await _service(request).retry(body.workFlowId, body.context, caller=caller)
    return _info_response(state)


@api.route(
    "POST",
    "/api/v1/workflow/callback",
    summary="Complete a callback node (by its token, or by flow and node id): success or "
    "fail, with result text and context keys to set; the flow moves on",
    body=CallbackRequest,
    response=InfoResponse,
    errors=(400, 404, 410, 409),
    tags=FLOWS,
)
async def complete_callback(request: web.Request, body: CallbackRequest) -> InfoResponse:
    ctx = context_of(request)
    if body.workFlowId is not None:
        await _visible(request, body.workFlowId)
    completion = Completion(
        succeeded=body.status == "success",
        token=body.token,
        flow_id=body.workFlowId,
        node_id=body.nodeId,
        result=body.result,
        message=body.message,
        changes=body.context,
    )
    state = await _service(request).complete_callback(
        completion, caller_of(ctx, body.reason), tenant_of(request)
    )
    return _info_response(state)


@api.route(
    "POST",
    "/api/v1/workflow/bulk",
    summary="Start, stop, cancel or retry many flows (named, or a page of those a filter "
    "selects) with one reason; the answer has each flow's outcome",
    body=BulkRequest,
    response=BulkResponse,
    errors=(400,),
    tags=FLOWS,
)
async def bulk_action(request: web.Request, body: BulkRequest) -> BulkResponse:
    ctx = context_of(request)
    tenant = tenant_of(request)
    return await run_bulk(
        _service(request),
        body,
        ctx,
        caller_of(ctx, body.reason),
        tenant=tenant,
        where=None if body.filter is None else list_filter(body.filter, tenant),
        after=parse_cursor(body.cursor) if body.cursor else None,
    )


@api.route(
    "GET",
    "/api/v1/workflow/{workFlowId}/events",
    summary="A flow's event history, oldest first, paged",
    query=HistoryQuery,
    response=HistoryResponse,
    paged=True,
    errors=(400, 404, 410),
    tags=FLOWS,
)
async def flow_history(request: web.Request, workFlowId: str, query: HistoryQuery) -> Paged:
    pool = await read_pool(request)
    row = await _visible(request, workFlowId, pool)
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
    await _visible(request, flow_id, pool)
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
)
async def flow_stream_sse(
    request: web.Request,
    workFlowId: str,
    query: HistoryQuery,
) -> web.StreamResponse:
    row = await _visible(request, workFlowId, await read_pool(request))
    engine = request.app[keys.ENGINE]
    stream = flow_stream(workFlowId)
    last = (query.page - 1) * query.pageSize  # events already seen by the client
    resume = request.headers.get("Last-Event-ID", "")
    if resume.isdigit():
        last = max(last, int(resume))
    if last >= row.stream_version and row.status in _ENDED_STATUSES:
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
    waiter = engine.listener.register()
    shutting_down = request.app[keys.SHUTTING_DOWN]
    try:
        while not shutting_down.is_set():
            waiter.clear()
            # Woken by a commit's NOTIFY: a replica answers once it has replayed that commit.
            stored = await engine.reads.run(
                partial(_read_stream, stream=stream, after=last + 1), await engine.reads.fresh()
            )
            for event in stored:
                payload = orjson.dumps(
                    {
                        "version": event.version,
                        "type": event.type,
                        "time": event.recorded_at,
                        "data": event.data,
                        "metadata": event.metadata,
                    }
                )
                await response.write(
                    b"id: %d\nevent: %s\ndata: %s\n\n"
                    % (event.version, event.type.encode(), payload)
                )
                last = event.version
                if event.type in _ENDED and event is stored[-1]:
                    # Ended, as of now (an Error flow's history may go on: a retry).
                    return response
            await wait_any([waiter, shutting_down], _KEEPALIVE)
            if not (waiter.is_set() or shutting_down.is_set()):
                await response.write(b": keep-alive\n\n")
        # The server is stopping: the client reconnects (Last-Event-ID) to another instance.
        return response
    except ConnectionError:
        return response  # the client went away (a closed tab): nothing to tell anyone
    finally:
        engine.listener.unregister(waiter)


async def _read_stream(pool: asyncpg.Pool, *, stream: str, after: int) -> list[RecordedEvent]:
    return await EventReader(pool).read_stream(stream, after)


# -- definitions -------------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/workflow-definitions",
    summary="The definitions recorded in the log",
    response=DefinitionList,
    errors=(),
    tags=DEFINITIONS,
)
async def list_definitions(request: web.Request) -> DefinitionList:
    pool = await read_pool(request)
    by_name: dict[str, list[Any]] = {}
    for row in await pool.fetch(MQ.definitions, tenant_of(request)):
        by_name.setdefault(row["name"], []).append(row)
    return DefinitionList(
        definitions=[
            DefinitionSummary(
                name=name,
                latestVersion=rows[-1]["version"],
                versions=len(rows),
                nodeNames=list(rows[-1]["node_names"]),
            )
            for name, rows in sorted(by_name.items())
        ]
    )


@api.route(
    "GET",
    "/api/v1/workflow-definitions/{name}",
    summary="A definition: every version, with its nodes",
    response=DefinitionDetail,
    errors=(404,),
    tags=DEFINITIONS,
)
async def get_definition(request: web.Request, name: str) -> DefinitionDetail:
    rows = await (await read_pool(request)).fetch(MQ.definitions_named, name, tenant_of(request))
    if not rows:
        raise DefinitionNotFound(name)
    versions = [
        DefinitionVersion(
            version=r["version"],
            registeredAt=r["registered_at"],
            nodeNames=list(r["node_names"]),
            definition=r["definition"],
        )
        for r in rows
    ]
    return DefinitionDetail(name=name, latestVersion=versions[-1].version, versions=versions)


@api.route(
    "POST",
    "/api/v1/workflow-definitions",
    summary="Register a definition made of "
    "built-in executors (a changed definition is a new version; running flows keep "
    "theirs)",
    body=DefinitionSpec,
    response=RegisteredResponse,
    errors=(400, 409),
    tags=DEFINITIONS,
)
async def register_definition(request: web.Request, body: DefinitionSpec) -> RegisteredResponse:
    definition = definition_from_spec(body)
    registry = request.app[keys.ENGINE].registry
    with contextlib.suppress(DefinitionNotFound):
        if registry.get(body.name).spec is None:
            raise WorkflowError(
                Code.INVALID_DEFINITION,
                f"{body.name} is defined in code; a definition over REST needs another name",
            )
    ctx = context_of(request)
    version = await _service(request).register_workflow(
        definition, caller_of(ctx), tenant_of(request)
    )
    return RegisteredResponse(
        name=definition.name, version=version, nodeNames=list(definition.node_names)
    )


# -- operations --------------------------------------------------------------------------------


@api.route("GET", "/healthz", summary="Liveness", response=Health, errors=(), tags=OPS)
async def healthz(request: web.Request) -> Health:
    return Health(status="ok")


@api.route(
    "GET",
    "/readyz",
    summary="Readiness: the database and the notification listener",
    response=Readiness,
    raw=True,
    errors=(503,),
    tags=OPS,
)
async def readyz(request: web.Request) -> web.Response:
    engine = request.app[keys.ENGINE]
    checks = {"database": False, "listener": engine.listener.connected}
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            checks["database"] = await engine.pool.fetchval("SELECT true") is True
    ready = all(checks.values())
    replicas = [
        ReplicaHealth(
            name=r.name,
            state=r.state.value,
            lagSeconds=None if r.lag_seconds is None else round(r.lag_seconds, 3),
            replayed=format_position(r.replayed) if r.replayed else None,
            error=r.error,
        )
        for r in engine.reads.replicas
    ]
    health = Ready(status="ready" if ready else "not ready", checks=checks, replicas=replicas)
    if ready:
        answer = Readiness(data=health)
    else:
        answer = Readiness(code=Code.UNAVAILABLE, message="not ready", data=health)
    return json_response(answer.model_dump(mode="json"), 200 if ready else 503)


@api.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    response=None,
    raw=True,
    errors=(),
    media_type="text/plain",
    tags=OPS,
)
async def metrics(request: web.Request) -> web.Response:
    engine = request.app[keys.ENGINE]
    reactor = engine.reactor
    busy, parked, polls = (
        (0, 0, 0) if reactor is None
        else (reactor.busy, len(reactor.parking), reactor.parking.polls)
    )  # fmt: skip
    request.app[keys.METRICS].observe_replicas(engine.reads.replicas)
    body = await request.app[keys.METRICS].render(engine.pool, busy, parked, polls)
    # Prometheus's text exposition format names its version in the Content-Type.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@api.route(
    "GET",
    "/api/v1/openapi.json",
    summary="This document",
    response=None,
    raw=True,
    errors=(),
    tags=OPS,
)
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[keys.OPENAPI])


@api.route(
    "GET",
    "/api/v1/docs",
    summary="The API, interactive (Swagger UI, served from this server: works offline)",
    response=None,
    raw=True,
    errors=(),
    media_type="text/html",
    tags=OPS,
)
async def docs(request: web.Request) -> web.Response:
    session = context_of(request).session
    values = {"csrf_token": session.csrf_token if session is not None else ""}
    return aiohttp_jinja2.render_template("apidocs.html.j2", request, values)
