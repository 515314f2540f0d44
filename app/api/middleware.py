"""The API's middleware: one per request, made of small named steps, in this order:

1. ``_authenticate``: who asks (a key or token as a bearer token, else the console's session
   cookie; on a server with no keys, tokens or identity provider, everyone: ``OPEN``);
2. ``_unauthorized``: 401 when access is on and nobody is named (open paths aside); what each
   route's role allows is checked by the route itself (``flowlog.api.authorize``);
3. ``_forgery``: 403 for a cross-site request, or a session's request without its CSRF token;
4. ``_idempotency_key``: a POST's ``Idempotency-Key`` (``_bad_idempotency_key``: 400 if it
   cannot be a key);
5. ``_context``: what the handlers read (``flowlog.api.context``); then the answer, errors
   mapped to the envelope (``flowlog.api.errors.answer``), and ``_stamp``: its
   ``X-Request-Id``;
6. ``_observe``: the request's metrics, and ``_log_access``: its access log line.

One middleware rather than one per step: each middleware is another call around every request,
and the steps share what the first ones found.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import hdrs, web

from flowlog.access.identity import OPEN, Identity
from flowlog.access.ring import KeyRing
from flowlog.access.sessions import Session
from flowlog.api.access import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, cross_site_refusal
from flowlog.api.context import CLOSE_AFTER, CONTEXT, Context
from flowlog.api.errors import answer, error_response
from flowlog.telemetry import tracing
from flowlog.workflow.errors import Code
from flowlog.workflow.idempotency import DEFAULT_TTL, Idempotency

log = logging.getLogger("flowlog.api")

EVERY_TENANT_SCOPE = "\x1fevery tenant"
"""The namespace of a superadmin's idempotency keys (no tenant's name starts with a control
character)."""
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"})
CONSOLE_ROUTES = "console."
"""Routes named with this prefix are the console's: its pages answer a missing log-in with a
redirect to the log-in page, not 401, so the middleware lets them through."""


RequestObserver = Callable[[str, str, int, float], None]
"""Called once per request: method, route template, status, seconds."""


IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENT_METHODS = frozenset({"POST", "PATCH"})
"""The methods whose requests honour an Idempotency-Key (PUT and DELETE are so already)."""
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_middlewares(
    access: KeyRing, observe: RequestObserver, idempotency_ttl: timedelta = DEFAULT_TTL
) -> list[Any]:
    @web.middleware
    async def context_and_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = _header_id(request, "X-Request-Id")
        # A trace id of its own, else the request span's (traceparent), else a new one.
        trace_id = _header_id(request, "X-Trace-Id", tracing().trace_id())
        status = 500
        ctx: Context | None = None
        try:
            identity, session = await _authenticate(access, request)
            key = _idempotency_key(request)
            refusal = _refusal(request, identity, session, key)
            if refusal is None:
                ctx = _context(identity, session, request_id, trace_id, key, idempotency_ttl)
                request[CONTEXT] = ctx
                response = await answer(request, handler)
            else:
                response = refusal
            _stamp(request, response, request_id)
            status = response.status
            return response
        finally:
            seconds = time.perf_counter() - started
            _observe(observe, request, status, seconds)
            _log_access(request, status, seconds, request_id, trace_id, ctx)

    return [context_and_log]


async def _authenticate(
    access: KeyRing, request: web.Request
) -> tuple[Identity | None, Session | None]:
    """Who the request's bearer token is, else its console session's (and the session);
    everyone is ``OPEN`` on a server without keys, tokens or identity provider."""
    if not access.enabled:
        return OPEN, None
    identity = await access.bearer(request.headers.get("Authorization"))
    if identity is not None:
        return identity, None
    session = access.session(request.cookies.get(SESSION_COOKIE))
    return (session.identity if session is not None else None), session


def _unauthorized(request: web.Request, identity: Identity | None) -> web.Response | None:
    """401, when access is on and the request names nobody (open paths aside)."""
    if identity is not None or _open(request):
        return None
    response = error_response(Code.UNAUTHORIZED, "a bearer token is required", 401)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _open(request: web.Request) -> bool:
    name = request.match_info.route.name or ""
    return request.path in OPEN_PATHS or name.startswith(CONSOLE_ROUTES)


def _forgery(
    request: web.Request, identity: Identity | None, session: Session | None
) -> web.Response | None:
    """403, for a request that a browser may have sent on its own (a bearer token's never is)."""
    if identity is not None and identity is not OPEN and session is None:
        return None
    refusal = _forgery_reason(request, session)
    return None if refusal is None else error_response(Code.FORBIDDEN, refusal, 403)


def _forgery_reason(request: web.Request, session: Session | None) -> str | None:
    """Why a request that a browser may have sent on its own must be refused, or None.

    The console's own forms (log-in, log-out) check their CSRF field themselves.
    """
    refusal = cross_site_refusal(request)
    if refusal is not None or session is None or request.method in SAFE_METHODS:
        return refusal
    if (request.match_info.route.name or "").startswith(CONSOLE_ROUTES):
        return None
    if not session.accepts_csrf(request.headers.get(CSRF_HEADER)):
        return f"a console session's request must carry its {CSRF_HEADER} header"
    return None


def _refusal(
    request: web.Request, identity: Identity | None, session: Session | None, key: str | None
) -> web.Response | None:
    """The first refusal of the checks, in order: 401, 403, then a bad Idempotency-Key's 400."""
    refusal = _unauthorized(request, identity)
    if refusal is None:
        refusal = _forgery(request, identity, session)
    if refusal is None:
        refusal = _bad_idempotency_key(key)
    return refusal


def _bad_idempotency_key(key: str | None) -> web.Response | None:
    if key != "":
        return None
    message = f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters"
    return error_response(Code.BAD_INPUT, message, 400)


def _idempotency_key(request: web.Request) -> str | None:
    """The POST's (or PATCH's) Idempotency-Key; "" for one that cannot be a key; None when
    there is none."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None or request.method not in IDEMPOTENT_METHODS:
        return None
    return value if _IDEMPOTENCY_KEY.match(value) else ""


def _context(
    identity: Identity | None, session: Session | None, request_id: str, trace_id: str,
    key: str | None, idempotency_ttl: timedelta,
) -> Context:  # fmt: skip
    """What the handlers read of the request (``context_of``)."""
    if identity is None:
        ctx = Context("", "anonymous", request_id, trace_id)
    else:
        ctx = Context(identity.tenant, identity.actor, request_id, trace_id, session,
                      identity=identity)  # fmt: skip
    if key is None:
        return ctx
    scope = ctx.tenant_id
    if identity is not None and identity.every_tenant and identity is not OPEN:
        # A superadmin's answers name every tenant's flows: its keys are not its home tenant's,
        # whose callers would be answered them again for the same key.
        scope = EVERY_TENANT_SCOPE
    return dataclasses.replace(ctx, idempotency=Idempotency(key, scope, idempotency_ttl))


def _stamp(request: web.Request, response: web.StreamResponse, request_id: str) -> None:
    """The answer's X-Request-Id; and the connection closed after a body it could not read."""
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
        if request.get(CLOSE_AFTER):
            response.force_close()


def _header_id(request: web.Request, name: str, otherwise: str | None = None) -> str:
    value = request.headers.get(name, "")
    if value and len(value) <= 128 and value.isprintable():
        return value
    return otherwise or _new_id()


def _new_id() -> str:
    """A request's or a trace's id: 128 random bits in hex, as ``uuid4().hex`` was, from the
    process's pseudo-random generator: these ids find a request's log lines and events, they
    guard nothing, and ``uuid4`` cost a system call for each (two a request), on a loaded
    machine a turn of the CPU lost (docs/benchmarks.md, ``bench http``)."""
    return f"{random.getrandbits(128):032x}"


def _observe(observe: RequestObserver, request: web.Request, status: int, seconds: float) -> None:
    """The request's metrics, by method and route template: flow ids never become labels;
    unmatched paths share one."""
    resource = request.match_info.route.resource
    route = "unmatched" if resource is None else resource.canonical
    method = request.method if request.method in hdrs.METH_ALL else "OTHER"
    observe(method, route, status, seconds)


def _log_access(
    request: web.Request, status: int, seconds: float, request_id: str, trace_id: str,
    ctx: Context | None,
) -> None:  # fmt: skip
    log.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": status,
            "ms": round(seconds * 1000, 2),
            "request_id": request_id,
            "trace_id": trace_id,
            "tenant": ctx.tenant_id if ctx else None,
        },
    )
