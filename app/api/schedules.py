"""The schedule routes: ``/api/v1/workflow-schedules`` (create, list, get, update, pause,
resume, delete). A tenant sees only its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import caller_of, tenant_of
from flowlog.api.context import context_of
from flowlog.api.operations import Api, Paged
from flowlog.schedules import decide
from flowlog.schedules.service import ScheduleService
from flowlog.schedules.state import ScheduleState
from flowlog.wire.envelope import Page
from flowlog.wire.schedules import (
    ScheduleChange,
    ScheduleCreate,
    ScheduleDetail,
    ScheduleEventInfo,
    ScheduleInfo,
    ScheduleList,
    ScheduleListQuery,
    ScheduleSpec,
    ScheduleUpdate,
)

api = Api()
SCHEDULES = ("schedules",)
PATH = "/api/v1/workflow-schedules"


def _schedules(request: web.Request) -> ScheduleService:
    return request.app[keys.ENGINE].schedules


def _info(state: ScheduleState, upcoming: int = 5) -> ScheduleInfo:
    return ScheduleInfo(
        scheduleId=state.schedule_id,
        tenantId=state.tenant_id,
        status=state.status.value,
        spec=state.spec,
        nextFireTimes=decide.next_fires(state, upcoming),
        lastFireTime=state.last_fire_at,
        lastFlowId=state.last_flow_id,
        fires=state.fires,
        skipped=state.skipped,
        createTime=state.created_at,
        updateTime=state.updated_at,
        version=state.version,
    )


@api.route(
    "POST",
    PATH,
    summary="Create a schedule: a cron expression or an interval, in a time zone, that starts "
    "a flow of a definition at each fire",
    body=ScheduleCreate,
    response=ScheduleInfo,
    errors=(400, 404, 409),
    tags=SCHEDULES,
    role=Role.ADMIN,
)
async def create_schedule(request: web.Request, body: ScheduleCreate) -> ScheduleInfo:
    ctx = context_of(request)
    state = await _schedules(request).create(
        body.scheduleId, body.spec(), tenant_id=ctx.tenant_id, paused=body.paused,
        visible_to=tenant_of(request),
        caller=caller_of(ctx, body.reason),
    )  # fmt: skip
    return _info(state)


@api.route(
    "GET",
    PATH,
    summary="List schedules (by id), with their next fire times",
    query=ScheduleListQuery,
    response=ScheduleList,
    paged=True,
    tags=SCHEDULES,
    role=Role.VIEWER,
)
async def list_schedules(request: web.Request, query: ScheduleListQuery) -> Paged:
    service = _schedules(request)
    rows, total = await service.rows(tenant_of(request), query.cursor, query.pageSize + 1)
    page = rows[: query.pageSize]
    infos = []
    for row in page:
        view = await service.view(row["id"], upcoming=3)
        infos.append(_info(view.state, 3))
    more = len(rows) > query.pageSize
    data = ScheduleList(schedules=infos, nextCursor=page[-1]["id"] if more else None)
    return Paged(data, Page(page=1, pageSize=query.pageSize, total=total))


@api.route(
    "GET",
    PATH + "/{scheduleId}",
    summary="A schedule: its settings, next fire times, and latest events",
    response=ScheduleDetail,
    errors=(404,),
    tags=SCHEDULES,
    role=Role.VIEWER,
)
async def get_schedule(request: web.Request, scheduleId: str) -> ScheduleDetail:
    view = await _schedules(request).view(scheduleId, tenant=tenant_of(request), upcoming=10)
    events = [
        ScheduleEventInfo(
            version=e.version,
            type=e.type,
            time=e.recorded_at,
            actor=str(e.metadata.get("actor", "")),
            reason=str(e.metadata.get("reason", "")),
            data=dict(e.data),
        )
        for e in view.events[-50:]
    ]
    return ScheduleDetail(info=_info(view.state, 10), events=events)


@api.route(
    "PUT",
    PATH + "/{scheduleId}",
    summary="Change a schedule's settings (fire times of the new settings already past are "
    "not made up for)",
    body=ScheduleUpdate,
    response=ScheduleInfo,
    errors=(400, 404, 409),
    tags=SCHEDULES,
    role=Role.ADMIN,
)
async def update_schedule(
    request: web.Request, scheduleId: str, body: ScheduleUpdate
) -> ScheduleInfo:
    ctx = context_of(request)
    spec = ScheduleSpec.model_validate(body.model_dump(exclude={"reason"}))
    state = await _schedules(request).update(
        scheduleId, spec, tenant=tenant_of(request), caller=caller_of(ctx, body.reason)
    )
    return _info(state)


@api.route(
    "POST",
    PATH + "/{scheduleId}/pause",
    summary="Pause a schedule: it fires no more until resumed",
    body=ScheduleChange,
    response=ScheduleInfo,
    errors=(400, 404, 409),
    tags=SCHEDULES,
    role=Role.OPERATOR,
)
async def pause_schedule(
    request: web.Request, scheduleId: str, body: ScheduleChange
) -> ScheduleInfo:
    return await _change(request, scheduleId, body.reason, _schedules(request).pause)


@api.route(
    "POST",
    PATH + "/{scheduleId}/resume",
    summary="Resume a paused schedule (the fires it missed while paused are not made up for)",
    body=ScheduleChange,
    response=ScheduleInfo,
    errors=(400, 404, 409),
    tags=SCHEDULES,
    role=Role.OPERATOR,
)
async def resume_schedule(
    request: web.Request, scheduleId: str, body: ScheduleChange
) -> ScheduleInfo:
    return await _change(request, scheduleId, body.reason, _schedules(request).resume)


@api.route(
    "DELETE",
    PATH + "/{scheduleId}",
    summary="Delete a schedule (its history stays in the log; the id can be used again)",
    query=ScheduleChange,
    response=ScheduleInfo,
    errors=(400, 404, 409),
    tags=SCHEDULES,
    role=Role.ADMIN,
)
async def delete_schedule(
    request: web.Request, scheduleId: str, query: ScheduleChange
) -> ScheduleInfo:
    return await _change(request, scheduleId, query.reason, _schedules(request).delete)


Change = Callable[..., Awaitable[ScheduleState]]


async def _change(request: web.Request, schedule_id: str, reason: str, command: Change
                  ) -> ScheduleInfo:  # fmt: skip
    """Pause, resume or delete, for the caller's tenant, with its reason."""
    caller = caller_of(context_of(request), reason)
    return _info(await command(schedule_id, tenant=tenant_of(request), caller=caller))
