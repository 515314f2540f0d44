"""The console's schedule pages: every schedule with its next fires, and one schedule with
its settings, its next fires, its history, and pause / resume (through the REST API)."""

from __future__ import annotations

from aiohttp import web

from flowlog.api import keys
from flowlog.api.common import tenant_of
from flowlog.console.pages import page, render
from flowlog.schedules import decide
from flowlog.schedules.service import ScheduleService

UPCOMING = 10
EVENTS_SHOWN = 200


def _schedules(request: web.Request) -> ScheduleService:
    return request.app[keys.ENGINE].schedules


@page
async def schedules_page(request: web.Request) -> web.StreamResponse:
    service = _schedules(request)
    tenant = tenant_of(request)
    rows, total = await service.rows(tenant, "", 500)
    views = [await service.view(row["id"], tenant=tenant, upcoming=3) for row in rows]
    return render(
        request,
        "schedules.html.j2",
        {"views": views, "total": total, "nav": "schedules"},
    )


@page
async def schedule_page(request: web.Request) -> web.StreamResponse:
    schedule_id = request.match_info["schedule_id"]
    view = await _schedules(request).view(schedule_id, tenant=tenant_of(request),
                                          upcoming=UPCOMING)  # fmt: skip
    return render(
        request,
        "schedule.html.j2",
        {
            "view": view,
            "spec": view.state.spec,
            "events": list(reversed(view.events[-EVENTS_SHOWN:])),
            "jitters": [decide.jitter_of(view.state, t) for t in view.next_fires],
            "nav": "schedules",
        },
    )
