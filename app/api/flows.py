"""The flows' routes: the seed's four (list, detail, start, stop) and the commands beyond them
(create, cancel, context, retry, callback, bulk)."""

from __future__ import annotations

from aiohttp import web

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.bulk import run_bulk
from flowlog.api.children import children_info
from flowlog.api.common import (
    caller_of,
    list_filter,
    named_flow,
    parse_cursor,
    service_of,
    tenant_of,
)
from flowlog.api.context import context_of
from flowlog.api.operations import Api, Paged
from flowlog.api.replicas import read_pool
from flowlog.eventstore.pool import Executor
from flowlog.projections.reads import list_workflows
from flowlog.projections.rows import WorkflowRow
from flowlog.wire.bulk import BulkRequest, BulkResponse
from flowlog.wire.envelope import Empty, Page
from flowlog.wire.flows import (
    CallbackRequest,
    CancelRequest,
    ContextRequest,
    CreatedResponse,
    CreateRequest,
    InfoResponse,
    ListQuery,
    RetryRequest,
    StopRequest,
    WaitingFor,
    WaitingInfo,
    WorkFlowDetail,
    WorkFlowIdRequest,
    WorkFlowList,
    info_of,
    node_of,
)
from flowlog.wire.tasks import TaskHolder
from flowlog.workflow.admission import Waiting, waiting_for
from flowlog.workflow.projection import workflow_row
from flowlog.workflow.service import Completion, WorkflowService
from flowlog.workflow.state import FlowState

api = Api()
FLOWS = ("workflow",)


def _info_response(state: FlowState) -> InfoResponse:
    """The flow as the command left it: the same row the append projected (its fold), and the
    same again when an idempotent request is answered a second time."""
    return InfoResponse(info=info_of(workflow_row(state)))


# -- the seed's routes -------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/workflow/",
    summary="List flows (newest first)",
    query=ListQuery,
    response=WorkFlowList,
    paged=True,
    tags=FLOWS,
    role=Role.VIEWER,
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


@api.route(
    "GET",
    "/api/v1/workflow/{workFlowId}",
    summary="A flow, its node executions and its definition's node names",
    response=WorkFlowDetail,
    errors=(404, 410),
    tags=FLOWS,
    role=Role.VIEWER,
)
async def detail_flow(request: web.Request, workFlowId: str) -> WorkFlowDetail:
    pool = await read_pool(request)
    await named_flow(request, workFlowId, pool)
    detail = await service_of(request).detail_workflow(workFlowId, pool)
    last = detail.nodes[-1] if detail.nodes else None
    running = last is not None and last.status == "Processing"
    waiting = None
    if running and last is not None and last.kind in ("timer", "callback"):
        waiting = await _waiting(service_of(request), workFlowId)
    return WorkFlowDetail(
        info=info_of(detail.info),
        nodes=[node_of(n) for n in detail.nodes],
        nodeNames=detail.node_names,
        waiting=waiting,
        children=await children_info(pool, service_of(request), workFlowId, detail.executions),
        task=await _task(request, workFlowId) if running else None,
        waitingFor=await _waiting_for(request, detail.info, pool),
    )


async def _waiting_for(
    request: web.Request, info: WorkflowRow, pool: Executor
) -> list[WaitingFor] | None:
    """The limits a flow of a definition with flow control waits on, if it waits."""
    registry = service_of(request).registry
    if info.status != "Processing" or not registry.limited(info.name):
        return None
    found = await waiting_for(pool, info.id, registry.by_version(info.definition_version))
    return [_waiting_for_of(w) for w in found] or None


def _waiting_for_of(w: Waiting) -> WaitingFor:
    return WaitingFor(
        limit=w.limit, of=w.of, key=w.key, value=w.value, ahead=w.ahead, running=w.running,
        startsAt=w.starts_at, reason=w.reason,
    )  # fmt: skip


async def _task(request: web.Request, flow_id: str) -> TaskHolder | None:
    """The task the flow's running node offers, if it is offered on a queue."""
    row = await request.app[keys.ENGINE].tasks.task_of(flow_id)
    if row is None:
        return None
    return TaskHolder(
        queue=row["queue"], nodeId=row["task_node_id"], operationId=row["task_operation"],
        offeredAt=row["offered_at"], workerId=row["task_worker"],
        claimedAt=row["task_claimed_at"], leaseExpiresAt=row["task_expires_at"],
        details=row["task_details"],
    )  # fmt: skip


async def _waiting(service: WorkflowService, flow_id: str) -> WaitingInfo | None:
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
    role=Role.OPERATOR,
)
async def start_flow(request: web.Request, body: WorkFlowIdRequest) -> Empty:
    await named_flow(request, body.workFlowId)
    await service_of(request).start(body.workFlowId, caller_of(context_of(request), body.reason))
    return Empty()


@api.route(
    "POST",
    "/api/v1/workflow/stop",
    summary="Stop (pause) a flow: a running node finishes, nothing further runs until start",
    body=StopRequest,
    response=Empty,
    errors=(400, 404, 410, 409),
    tags=FLOWS,
    role=Role.OPERATOR,
)
async def stop_flow(request: web.Request, body: StopRequest) -> Empty:
    await named_flow(request, body.workFlowId)
    ctx = context_of(request)
    await service_of(request).stop(body.workFlowId, body.reason, caller_of(ctx, body.reason))
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
    role=Role.OPERATOR,
)
async def create_flow(request: web.Request, body: CreateRequest) -> CreatedResponse:
    ctx = context_of(request)
    state = await service_of(request).create(
        body.bizId,
        body.bizType,
        body.flowName,
        context=body.context,
        caller=caller_of(ctx),
        tenant_id=ctx.tenant_id,
        user_id=ctx.actor,
        start=body.start,
        visible_to=tenant_of(request),
        priority=body.priority,
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
    role=Role.OPERATOR,
)
async def cancel_flow(request: web.Request, body: CancelRequest) -> InfoResponse:
    await named_flow(request, body.workFlowId)
    ctx = context_of(request)
    state = await service_of(request).cancel(
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
    role=Role.OPERATOR,
)
async def set_context(request: web.Request, body: ContextRequest) -> InfoResponse:
    await named_flow(request, body.workFlowId)
    state = await service_of(request).set_context(
        body.workFlowId, {body.key: body.value}, caller=caller_of(context_of(request), body.reason)
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
    role=Role.OPERATOR,
)
async def retry_flow(request: web.Request, body: RetryRequest) -> InfoResponse:
    await named_flow(request, body.workFlowId)
    ctx = context_of(request)
    caller = caller_of(ctx, body.reason)
    state = await service_of(request).retry(body.workFlowId, body.context, caller=caller)
    return _info_response(state)


@api.route(
    "POST",
    "/api/v1/workflow/callback",
    summary="Complete a callback node (by its token, or by flow and node id): success or "
    "fail, with result text and context keys to set; the flow moves on",
    body=CallbackRequest,
    response=InfoResponse,
    # 413: a result at its longest, in escaped JSON, exceeds the 1 MiB body.
    errors=(400, 404, 410, 409, 413),
    tags=FLOWS,
    role=Role.OPERATOR,
)
async def complete_callback(request: web.Request, body: CallbackRequest) -> InfoResponse:
    ctx = context_of(request)
    if body.workFlowId is not None:
        await named_flow(request, body.workFlowId)
    completion = Completion(
        succeeded=body.status == "success",
        token=body.token,
        flow_id=body.workFlowId,
        node_id=body.nodeId,
        result=body.result,
        message=body.message,
        changes=body.context,
    )
    state = await service_of(request).complete_callback(
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
    role=Role.OPERATOR,
)
async def bulk_action(request: web.Request, body: BulkRequest) -> BulkResponse:
    ctx = context_of(request)
    tenant = tenant_of(request)
    return await run_bulk(
        service_of(request),
        body,
        ctx,
        caller_of(ctx, body.reason),
        tenant=tenant,
        where=None if body.filter is None else list_filter(body.filter, tenant),
        after=parse_cursor(body.cursor) if body.cursor else None,
    )
