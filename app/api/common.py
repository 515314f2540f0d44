"""What the API's route modules share, and the console with them: the engine's services, who
the caller is and which tenant's flows it sees, a flow it may see, and a list's filters and
cursor."""

from __future__ import annotations

from datetime import UTC

from aiohttp import web

from flowlog.api import keys
from flowlog.api.context import Context, context_of
from flowlog.archive.reading import not_here
from flowlog.eventstore.pool import Executor
from flowlog.flow_ids import NOT_A_FLOW_ID, is_flow_id
from flowlog.projections.reads import BadCursor, Cursor, ListFilter, get_workflow
from flowlog.projections.rows import WorkflowRow
from flowlog.storable import storable_text
from flowlog.telemetry import tracing
from flowlog.wire.flows import FlowFilter
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, FlowNotFound, WorkflowError
from flowlog.workflow.service import WorkflowService


def service_of(request: web.Request) -> WorkflowService:
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


def tenant_of(request: web.Request) -> str | None:
    """The tenant whose flows the caller sees, or None: every flow (a superadmin, or anyone
    on an open server)."""
    ctx = context_of(request)
    if ctx.identity is not None and ctx.identity.every_tenant:
        return None
    return ctx.tenant_id


async def visible_flow(request: web.Request, flow_id: str, pool: Executor) -> WorkflowRow:
    """The flow's row read from ``pool``, if the caller may see it (other tenants' flows do
    not exist for it; an archived flow answers where it went)."""
    row = await get_workflow(pool, flow_id)
    tenant = tenant_of(request)
    if row is None:
        raise await not_here(pool, flow_id, tenant)
    if tenant is not None and row.tenant_id != tenant:
        raise FlowNotFound(flow_id)
    return row


async def named_flow(
    request: web.Request, flow_id: str, pool: Executor | None = None
) -> WorkflowRow:
    """The flow a request names, if the caller may see it, read from ``pool`` (a read's
    replica; by default the primary, where commands look). A path's id must be one flowlog
    could have made (bodies' are checked by their models): 400, not 404."""
    if not is_flow_id(flow_id):
        raise WorkflowError(Code.BAD_INPUT, f"workFlowId: {NOT_A_FLOW_ID}")
    return await visible_flow(request, flow_id, pool or request.app[keys.ENGINE].pool)


def list_filter(selection: FlowFilter, tenant: str | None) -> ListFilter:
    return ListFilter(
        status=selection.status,
        name=selection.flowName,
        biz_id=selection.bizId,
        biz_type=selection.bizType,
        tenant_id=tenant,
        created_from=selection.createdFrom,
        created_to=selection.createdTo,
        parent_id=selection.parentFlowId,
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
