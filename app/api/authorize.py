"""Whether the caller's role allows a route: a refusal is a 403 that names the role needed,
and an event in the log (``AccessRefused``), so that access is audited as flows are."""

from __future__ import annotations

import logging

from aiohttp import web

from flowlog.access.limiter import Coalescer
from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.context import context_of
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError

log = logging.getLogger(__name__)

REFUSALS = web.AppKey("refusals", Coalescer)
"""At most one AccessRefused event per caller and route every 10 s (the rest are counted)."""
REFUSAL_WINDOW = 10.0


async def authorize(request: web.Request, needed: Role | None, route: str) -> None:
    """Returns when the caller may call ``route``; raises the refusal otherwise."""
    if needed is None:
        return
    ctx = context_of(request)
    identity = ctx.identity
    if identity is None:
        raise WorkflowError(Code.UNAUTHORIZED, "a bearer token is required")
    if identity.role.allows(needed):
        return
    request.app[keys.METRICS].refusals.labels(needed=needed.value).inc()
    repeats = request.app[REFUSALS].admit((identity.actor, request.method, route))
    if repeats is not None:
        caller = Caller(actor=identity.actor, trace_id=ctx.trace_id, request_id=ctx.request_id)
        try:
            await request.app[keys.ACCESS].store.refused(
                identity, method=request.method, route=route, needed=needed, caller=caller,
                repeats=repeats,
            )  # fmt: skip
        except Exception as exc:  # the refusal stands even if the log cannot take it now
            extra = {"error": repr(exc), "actor": identity.actor}
            log.warning("refusal not recorded", extra=extra)
    raise WorkflowError(
        Code.ROLE_REQUIRED,
        f"this needs the {needed} role; {identity.actor} has the {identity.role} role",
        {"roleNeeded": needed.value, "role": identity.role.value},
    )
