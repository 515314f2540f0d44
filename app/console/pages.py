"""The console's pages: flows, a flow (at any version of its history), definitions, log-in.

Pages are rendered on the server from the projections and the log; a few routes answer the
fragments that the page scripts swap in for live updates and time travel, so there is one way
to draw each thing. Every page checks access itself (a missing log-in is a redirect to the
log-in page), answers errors as pages, and says in ``Server-Timing`` how long it took.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import orjson
from aiohttp import web
from pydantic import ValidationError

from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.common import list_filter, parse_cursor, service_of, tenant_of, visible_flow
from flowlog.api.context import Context, context_of
from flowlog.api.errors import STATUS_OF
from flowlog.api.operations import check_query_encoding
from flowlog.api.queries import Q as API_QUERIES
from flowlog.api.replicas import answer_read, read_pool
from flowlog.api.sse import notices
from flowlog.audit.history import read_history
from flowlog.console import flowview, limits, present, reads
from flowlog.console.graph import layout
from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.projections.reads import list_workflows
from flowlog.wire.flows import ListQuery
from flowlog.workflow.errors import Code, DefinitionNotFound, FlowNotFound, WorkflowError
from flowlog.workflow.events import EVENT_TYPES
from flowlog.workflow.versions import awaiting, flow_awaits

log = logging.getLogger("flowlog.console")

PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
HISTORY_SHOWN = 1000
"""Events listed on a flow's page (the newest); the API pages through any number."""
LIVE_INTERVAL = 1.0
"""At most one refresh notice a second on the flows page's live stream."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(handler: Handler) -> Handler:
    """Access, errors as pages, and the render time of a console route."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        if _needs_login(request):
            target = "/login?" + urlencode({"next": request.path_qs})
            return web.Response(status=303, headers={"Location": target})
        try:
            check_query_encoding(request)
            response = await answer_read(request, handler)
        except WorkflowError as exc:
            response = _error(request, STATUS_OF.get(exc.code, 409), exc.message)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            response = _error(request, 400, problems)
        except TRANSIENT_ERRORS as exc:
            log.warning("database unavailable", extra={"error": repr(exc)})
            response = _error(request, 503, "The database is unavailable; try again.")
        except Exception:
            request_id = context_of(request).request_id
            log.exception(
                "console page failed", extra={"path": request.path, "request_id": request_id}
            )
            response = _error(request, 500, f"Something went wrong here (request {request_id}).")
        if not response.prepared:
            elapsed = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"render;dur={elapsed:.2f}"
        return response

    return wrapped


def _needs_login(request: web.Request) -> bool:
    return context_of(request).identity is None


def _can(ctx: Context) -> Callable[[str], bool]:
    """What the templates ask before they offer an action: ``can("operator")``."""
    return lambda role: ctx.identity is not None and ctx.identity.role.allows(Role(role))


def _error(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html.j2", {"status": status, "message": message}, status)


def render(
    request: web.Request, template: str, values: Mapping[str, Any], status: int = 200
) -> web.Response:
    ctx = context_of(request)
    common = {
        "ctx": ctx,
        "session": ctx.session,
        "csrf_token": ctx.session.csrf_token if ctx.session is not None else "",
        "access_on": request.app[keys.ACCESS].enabled,
        "identity": ctx.identity,
        "can": _can(ctx),
        "now": datetime.now(UTC),
    }
    return aiohttp_jinja2.render_template(template, request, {**common, **values}, status=status)


def fragment(request: web.Request, template: str, values: Mapping[str, Any]) -> str:
    env = aiohttp_jinja2.get_env(request.app)
    ctx = context_of(request)
    return env.get_template(template).render(ctx=ctx, now=datetime.now(UTC), can=_can(ctx),
                                             **values)  # fmt: skip


async def _pool(request: web.Request) -> Any:
    """Every page only reads: from a replica when one is configured (app/replicas/)."""
    return await read_pool(request)


# -- flows -------------------------------------------------------------------------------------


def _list_query(request: web.Request) -> tuple[ListQuery, int, present.WaitingKind | None]:
    """The list's filters from the URL (empty fields of the filter form mean "any"), with the
    console's own: ``waiting`` (the flows whose node waits on a callback, or on a timer) and
    ``parent`` (a flow's children: the API's ``parentFlowId``)."""
    given = {k: v for k, v in request.query.items() if v.strip()}
    waiting = _waiting_filter(given.pop("waiting", None))
    if "parent" in given:
        given["parentFlowId"] = given.pop("parent")
    page_size = DEFAULT_PAGE_SIZE
    if "pageSize" in given:
        try:
            page_size = int(given["pageSize"])
        except ValueError:
            page_size = 0
        if page_size not in PAGE_SIZES:
            raise WorkflowError(
                Code.BAD_INPUT, f"pageSize must be one of {', '.join(map(str, PAGE_SIZES))}"
            )
    return ListQuery.model_validate({**given, "pageSize": str(page_size)}), page_size, waiting


def _waiting_filter(value: str | None) -> present.WaitingKind | None:
    if value is None:
        return None
    if value == "callback":
        return "callback"
    if value == "timer":
        return "timer"
    raise WorkflowError(
        Code.BAD_INPUT, f"waiting must be one of {', '.join(present.WAITING_KINDS)}"
    )


async def _flows(request: web.Request) -> dict[str, Any]:
    query, page_size, waiting = _list_query(request)
    tenant = tenant_of(request)
    where = list_filter(query, tenant)
    after = parse_cursor(query.cursor) if query.cursor else None
    pool = await _pool(request)
    if waiting is None:
        listed = await list_workflows(
            pool, where, page=query.page, page_size=page_size, after=after
        )
    else:
        listed = await reads.waiting_flows(
            pool, where, waiting, page=query.page, page_size=page_size, after=after
        )
    current = await reads.current_nodes(pool, listed.rows)
    registry = service_of(request).registry
    waits = await limits.listed_limits(pool, listed.rows, registry, tenant)
    parent = None
    if query.parentFlowId is None:
        counts = await reads.status_counts(pool, tenant, query.flowName, query.bizType)
    else:
        parent = await visible_flow(request, query.parentFlowId, pool)
        counts = await reads.child_status_counts(
            pool, parent.id, tenant, query.flowName, query.bizType
        )
    filters = {
        k: v for k, v in request.query.items() if v.strip() and k not in {"cursor", "status"}
    }
    return {
        "query": query,
        "waiting": waiting,
        "waiting_kinds": present.WAITING_KINDS,
        "parent": parent,
        "page_size": page_size,
        "filters": filters,
        # The bulk API's filter knows no waiting: with it, only flows named one by one.
        "bulk_filter": {
            ("parentFlowId" if k == "parent" else k): v
            for k, v in filters.items()
            if k != "waiting"
        },
        "listed": listed,
        "rows": listed.rows,
        "current": current,
        "limits": waits,
        "counts": counts,
        "counted_total": sum(counts.values()),
        "first_page": after is None,
        "older_url": _url("/", {**request.query, "cursor": listed.next_cursor})
        if listed.next_cursor
        else None,
        "first_url": _url("/", {k: v for k, v in request.query.items() if k != "cursor"}),
        "status_url": lambda status: _url("/", {**filters, "status": status}),
        "unparented_url": _url("/", {k: v for k, v in filters.items() if k != "parent"}),
    }


def _url(path: str, params: Mapping[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return path + ("?" + urlencode(kept) if kept else "")


@page
async def flows_page(request: web.Request) -> web.StreamResponse:
    values = await _flows(request)
    pool = await _pool(request)
    values["definitions"] = await reads.definition_names(pool, tenant_of(request))
    # Flows a deploy stranded: their version is in no running process (docs/operations.md).
    values["stranded"] = await awaiting(pool, tenant_of(request))
    values["statuses"] = present.FLOW_STATUSES
    values["nav"] = "flows"
    return render(request, "flows.html.j2", values)


@page
async def flows_fragment(request: web.Request) -> web.StreamResponse:
    """The counts and rows of the flows page, for its live refresh."""
    values = await _flows(request)
    return json_answer(
        {
            "counts": fragment(request, "_counts.html.j2", values),
            "rows": fragment(request, "_flow_rows.html.j2", values),
            "total": values["listed"].total,
        }
    )


@page
async def go_to_flow(request: web.Request) -> web.StreamResponse:
    flow_id = request.query.get("id", "").strip()
    if not flow_id:
        raise WorkflowError(Code.BAD_INPUT, "give a flow id")
    await visible_flow(request, flow_id, await _pool(request))
    return web.Response(status=303, headers={"Location": "/flows/" + quote(flow_id, safe="")})


@page
async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``changed`` whenever the log grows (at most once a second), so the
    flows page refreshes its rows without being reloaded."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        async with notices(request, response) as heard:
            while not heard.over:
                await heard.wait()  # a keep-alive comment when nothing came
                if heard.commits.is_set() and not heard.over:
                    heard.commits.clear()
                    await response.write(b"event: changed\ndata: {}\n\n")
                    await asyncio.sleep(LIVE_INTERVAL)
    except ConnectionResetError:
        pass  # the page was closed: nothing to tell anyone
    return response


# -- a flow ------------------------------------------------------------------------------------


async def _flow(request: web.Request) -> dict[str, Any]:
    flow_id = request.match_info["flow_id"]
    pool = await _pool(request)
    row = await visible_flow(request, flow_id, pool)
    lines = await read_history(pool, flow_id)
    if not lines:
        raise FlowNotFound(flow_id)
    version = len(lines)
    raw = request.query.get("version", "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= len(lines):
            raise WorkflowError(
                Code.BAD_INPUT, f"version must be a number from 1 to {len(lines)}, not {raw!r}"
            )
        version = int(raw)
    # The graph is of the version the flow was on at the version shown (a migration moves it).
    on_version = flowview.definition_version_at(lines, version) or row.definition_version
    definition = await reads.definition_version(pool, on_version)
    started = [(line.data["node_id"], line.data["kind"]) for line in lines
               if line.type == "NodeStarted"]  # fmt: skip
    kin = await reads.kin(pool, flow_id, started)
    # Only a flow that ever offered a node on a queue can offer one now.
    queued = any(line.type == "NodeStarted" and line.data.get("queue") for line in lines)
    view = flowview.build(
        lines,
        version,
        None if definition is None else definition.definition,
        datetime.now(UTC),
        kin,
        await reads.flow_task(pool, flow_id) if queued else None,
    )
    since = request.query.get("since", "")
    first_listed = int(since) + 1 if since.isdigit() else max(1, len(lines) - HISTORY_SHOWN + 1)
    return {
        "row": row,
        "parent": await reads.parent_of(pool, row),
        "view": view,
        "limits": await limits.flow_limits(pool, row, service_of(request).registry),
        "awaits": await flow_awaits(pool, flow_id),
        "definition": definition,
        "lines": lines[first_listed - 1 :],
        "hidden_lines": first_listed - 1 if not since.isdigit() else 0,
        "event_types": sorted(EVENT_TYPES),
    }


@page
async def flow_page(request: web.Request) -> web.StreamResponse:
    values = await _flow(request)
    values["nav"] = "flows"
    return render(request, "flow.html.j2", values)


@page
async def flow_fragment(request: web.Request) -> web.StreamResponse:
    """The parts of a flow's page at a version (time travel), and the events after
    ``since`` (the live history)."""
    values = await _flow(request)
    view: flowview.FlowView = values["view"]
    return json_answer(
        {
            "version": view.version,
            "latest": view.latest,
            "eventType": view.line.type,
            "status": values["row"].status,
            "head": fragment(request, "_flow_head.html.j2", values),
            "actions": fragment(request, "_flow_actions.html.j2", values),
            "panel": fragment(request, "_flow_panel.html.j2", values),
            "travel": fragment(request, "_flow_travel.html.j2", values),
            "history": fragment(request, "_history_rows.html.j2", values),
        }
    )


def json_answer(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


# -- definitions -------------------------------------------------------------------------------


@page
async def definitions_page(request: web.Request) -> web.StreamResponse:
    pool = await _pool(request)
    by_name: dict[str, list[Any]] = {}
    for row in await pool.fetch(API_QUERIES.definitions, tenant_of(request)):
        by_name.setdefault(row["name"], []).append(row)
    counts = await reads.definition_counts(pool, tenant_of(request))
    return render(
        request,
        "definitions.html.j2",
        {
            "definitions": sorted(by_name.items()),
            "counts": counts,
            "statuses": present.FLOW_STATUSES,
            "nav": "definitions",
        },
    )


@page
async def definition_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    pool = await _pool(request)
    versions = await pool.fetch(API_QUERIES.definitions_named, name, tenant_of(request))
    if not versions:
        raise DefinitionNotFound(name)
    wanted = request.query.get("version") or versions[-1]["version"]
    chosen = next((v for v in versions if v["version"] == wanted), None)
    if chosen is None:
        raise DefinitionNotFound(name, wanted)
    counts = (await reads.definition_counts(pool, tenant_of(request))).get(name, {})
    return render(
        request,
        "definition.html.j2",
        {
            "name": name,
            "versions": versions,
            "chosen": chosen,
            "graph": layout(chosen["definition"]),
            "counts": counts,
            "statuses": present.FLOW_STATUSES,
            "nav": "definitions",
        },
    )
