"""The task API's routes (docs/workers.md): workers anywhere poll a queue for tasks, heartbeat
them and complete them; the queues' depths and workers."""

from __future__ import annotations

import orjson
from aiohttp import web
from asyncpg import Record

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import caller_of, tenant_of
from flowlog.api.context import context_of
from flowlog.api.operations import Api
from flowlog.tasks.service import Task, TaskQueues
from flowlog.wire.tasks import (
    CompleteRequest,
    CompleteResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    PollRequest,
    PollResponse,
    QueueInfo,
    QueueList,
    TaskInfo,
)
from flowlog.workflow.commands import CompleteTask
from flowlog.workflow.errors import Code, WorkflowError

api = Api()
TASKS = ("tasks",)
MAX_DETAILS = 64 * 1024


def _tasks(request: web.Request) -> TaskQueues:
    return request.app[keys.ENGINE].tasks


def _gone(request: web.Request) -> bool:
    """The client hung up, or the server is shutting down: a waiting poll ends."""
    transport = request.transport
    closing = transport is None or transport.is_closing()
    return closing or request.app[keys.SHUTTING_DOWN].is_set()


@api.route(
    "POST",
    "/api/v1/tasks/poll",
    summary="Lease up to max tasks offered on a queue, waiting up to waitSeconds for one",
    body=PollRequest,
    response=PollResponse,
    errors=(400,),
    tags=TASKS,
    role=Role.OPERATOR,
)
async def poll(request: web.Request, body: PollRequest) -> PollResponse:
    ctx = context_of(request)
    key = None if ctx.idempotency is None else ctx.idempotency.key
    leased = await _tasks(request).poll(
        ctx.tenant_id, body.queue, body.workerId, body.max, body.waitSeconds, key,
        lambda: _gone(request),
    )  # fmt: skip
    return PollResponse(tasks=[_task_info(t) for t in leased])


def _task_info(t: Task) -> TaskInfo:
    return TaskInfo(
        taskToken=t.token, workFlowId=t.flow_id, flowName=t.flow_name, bizId=t.biz_id,
        nodeId=t.node_id, nodeName=t.node_name, nodeKey=t.node_key, kind=t.kind,
        attempt=t.attempt, operationId=t.operation_id, context=dict(t.context),
        parameters=t.parameters, priority=t.priority, leaseSeconds=t.lease_seconds,
    )  # fmt: skip


@api.route(
    "POST",
    "/api/v1/tasks/heartbeat",
    summary="Extend a task's lease; answers whether the flow still wants the result",
    body=HeartbeatRequest,
    response=HeartbeatResponse,
    errors=(400, 404),
    tags=TASKS,
    role=Role.OPERATOR,
)
async def heartbeat(request: web.Request, body: HeartbeatRequest) -> HeartbeatResponse:
    details = body.details
    if details is not None and len(orjson.dumps(details)) > MAX_DETAILS:
        raise WorkflowError(Code.BAD_INPUT, f"details: at most {MAX_DETAILS} bytes of JSON")
    beat = await _tasks(request).heartbeat(body.taskToken, tenant_of(request), details)
    return HeartbeatResponse(wanted=beat.wanted, status=beat.status)


@api.route(
    "POST",
    "/api/v1/tasks/complete",
    summary="A task's outcome: success, fail, or running (a polling node's operation)",
    body=CompleteRequest,
    response=CompleteResponse,
    # 413: a result and parameters at their longest, in escaped JSON, exceed the 1 MiB body.
    errors=(400, 404, 409, 413),
    tags=TASKS,
    role=Role.OPERATOR,
)
async def complete(request: web.Request, body: CompleteRequest) -> CompleteResponse:
    command = CompleteTask(
        node_id="", operation_id=None, status=body.status, result=body.result,
        message=body.message, code=body.code, new_operation=body.operationId,
        parameters=body.parameters, changes=body.context, removed=tuple(body.contextRemoved),
    )  # fmt: skip
    answer = await _tasks(request).complete(
        body.taskToken, tenant_of(request), command, caller_of(context_of(request))
    )
    return CompleteResponse(workFlowId=answer.flow_id, nodeId=answer.node_id, status=answer.status)


@api.route(
    "GET",
    "/api/v1/tasks/queues",
    summary="Queues: tasks waiting, held, the oldest's age, workers seen in the last minute",
    response=QueueList,
    errors=(),
    tags=TASKS,
    role=Role.VIEWER,
)
async def queues(request: web.Request) -> QueueList:
    rows = await _tasks(request).queues(tenant_of(request))
    return QueueList(queues=[_queue_info(r) for r in rows])


def _queue_info(r: Record) -> QueueInfo:
    return QueueInfo(
        queue=r["queue"], depth=r["depth"], later=r["later"], held=r["held"],
        paused=r["paused"], oldestSeconds=r["oldest"], workers=list(r["workers"]),
        lastSeen=r["last_seen"],
    )  # fmt: skip
