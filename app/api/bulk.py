"""One action on many flows (``POST /api/v1/workflow/bulk``).

Each selected flow gets the very command a single request would send (its own append, its own
refusal), with the same actor, trace and reason; the answer has one line per flow, in the
order selected, so nothing is refused or skipped silently. A filter selects a page of the flows
a list with the same filters shows (newest first); ``nextCursor`` continues after them, so a
client walks a selection of any size a page at a time and every step is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from flowlog.api.context import Context
from flowlog.api.queries import Q
from flowlog.archive.reading import not_here
from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.eventstore.pool import Executor
from flowlog.projections.reads import Cursor, ListFilter, list_workflows
from flowlog.wire.bulk import BulkRequest, BulkResponse, BulkResult
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.idempotency import KeyedRequest, Recorded, fingerprint
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState

log = logging.getLogger("flowlog.api")

CONCURRENCY = 8
"""Flows acted on at once: enough to overlap round trips, few enough to leave the pool to
other requests."""


async def run_bulk(
    service: WorkflowService,
    body: BulkRequest,
    ctx: Context,
    caller: Caller,
    *,
    tenant: str | None,
    where: ListFilter | None,
    after: Cursor | None,
) -> BulkResponse:
    """Acts on the flows ``body`` names, or on those ``where`` selects (after ``after``, the
    decoded cursor); ``tenant``: the only tenant whose flows the caller sees (None: all).

    With an idempotency key, each flow's command has a key of its own (the request's and the
    flow's): sent again, the request acts on no flow twice, and once it has answered it
    answers the same again."""
    pool = service.store.pool
    idempotency = caller.idempotency
    request = fingerprint("bulk", body.model_dump(mode="json"))
    keyed = KeyedRequest(pool, idempotency, request, _first_answer)
    if (first := await keyed.answered()) is not None:
        return first
    next_cursor = None
    if where is not None:
        page = await list_workflows(pool, where, page_size=body.limit, after=after)
        selected = [row.id for row in page.rows]
        visible = set(selected)
        next_cursor = page.next_cursor
    else:
        assert body.workFlowIds is not None
        selected = body.workFlowIds
        rows = await pool.fetch(Q.tenants_of, selected)
        visible = {r["id"] for r in rows if tenant is None or r["tenant_id"] == tenant}
    command = _command(service, body)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(flow_id: str) -> BulkResult:
        each = caller
        if idempotency is not None:
            each = dataclasses.replace(caller, idempotency=idempotency.within(flow_id))
        async with limit:
            if flow_id not in visible:
                return await _act(flow_id, lambda: _absent(pool, flow_id, tenant))
            return await _act(flow_id, lambda: command(flow_id, each))

    results = await asyncio.gather(*(one(flow_id) for flow_id in selected))
    succeeded = sum(1 for r in results if r.code == 0)
    log.info(
        "bulk action",
        extra={
            "action": body.action,
            "selected": len(results),
            "succeeded": succeeded,
            "trace_id": ctx.trace_id,
        },
    )
    answer = BulkResponse(
        action=body.action,
        results=list(results),
        succeeded=succeeded,
        failed=len(results) - succeeded,
        nextCursor=next_cursor,
    )
    first = await keyed.recorded(answer, lambda: answer.model_dump(mode="json"))
    return answer if first is None else first  # a concurrent twin's, when it answered first


async def _first_answer(first: Recorded) -> BulkResponse | None:
    """The answer the key's first request recorded (None: none, act)."""
    return None if first.answer is None else BulkResponse.model_validate(first.answer)


Command = Callable[[str, Caller], Awaitable[FlowState]]


def _command(service: WorkflowService, body: BulkRequest) -> Command:
    match body.action:
        case "start":
            return lambda flow_id, caller: service.start(flow_id, caller)
        case "stop":
            return lambda flow_id, caller: service.stop(flow_id, body.reason, caller)
        case "cancel":
            return lambda flow_id, caller: service.cancel(flow_id, body.reason, caller)
        case "retry":
            return lambda flow_id, caller: service.retry(flow_id, body.context, caller=caller)


async def _absent(pool: Executor, flow_id: str, tenant: str | None) -> FlowState:
    """A named flow without a row the caller may see: archived (the code a single command
    answers), or it does not exist (another tenant's flow does not, for this caller)."""
    raise await not_here(pool, flow_id, tenant)


async def _act(flow_id: str, command: Callable[[], Awaitable[FlowState]]) -> BulkResult:
    try:
        state = await command()
    except WorkflowError as exc:
        return BulkResult(workFlowId=flow_id, code=exc.code, message=exc.message)
    except TRANSIENT_ERRORS as exc:
        log.warning("database unavailable", extra={"flow_id": flow_id, "error": repr(exc)})
        message = "the database is unavailable; try again"
        return BulkResult(workFlowId=flow_id, code=Code.UNAVAILABLE, message=message)
    except Exception:
        log.exception("bulk action failed", extra={"flow_id": flow_id})
        return BulkResult(workFlowId=flow_id, code=Code.INTERNAL, message="internal error")
    return BulkResult(workFlowId=flow_id, code=0, message="OK", status=state.status.value)
