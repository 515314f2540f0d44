"""A request's context, as the middleware sets it for the handlers: who asks, and the ids that
follow the request into logs and event metadata."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from flowlog.access.identity import Identity
from flowlog.access.sessions import Session
from flowlog.workflow.idempotency import Idempotency


@dataclass(frozen=True, slots=True)
class Context:
    """Who asks, and the ids that follow the request into logs and event metadata."""

    tenant_id: str
    actor: str
    request_id: str
    trace_id: str
    session: Session | None = None
    """The console session the request came with (None: a bearer token, or open access)."""
    idempotency: Idempotency | None = None
    """The request's Idempotency-Key, in its tenant (POST requests only)."""
    identity: Identity | None = None
    """Who asks (None: nobody, on a server that wants to know: only open routes answer)."""


CONTEXT = web.RequestKey("flowlog_context", Context)
CLOSE_AFTER = web.RequestKey("flowlog_close_after", bool)
"""The request left its connection unusable (an undecodable body): close it after answering."""


def context_of(request: web.Request) -> Context:
    return request[CONTEXT]
