"""Read routing for the HTTP service: with read replicas configured, each write's answer
carries its commit position (the ``Flowlog-Position`` header, and a cookie for browsers), a
read that presents one sees at least that write, and a read that a replica fails is answered
again from the primary."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web

from flowlog.api import keys
from flowlog.api.access import SAFE_METHODS
from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.replicas.position import COOKIE, HEADER, BadPosition, format_position, parse_position
from flowlog.replicas.router import Choice, ReadRouter
from flowlog.workflow.errors import Code, WorkflowError

log = logging.getLogger(__name__)

COOKIE_SECONDS = 300
"""Long past any lag a usable replica may have: after that any replica has the write."""

_PRESENTED = web.RequestKey("flowlog_presented_position", int)
_CHOICE = web.RequestKey("flowlog_read_choice", Choice)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _router(request: web.Request) -> ReadRouter:
    return request.app[keys.ENGINE].reads


async def read_pool(request: web.Request) -> asyncpg.Pool:
    """The pool this request reads from: one choice per request, so that its reads agree."""
    choice = request.get(_CHOICE)
    if choice is None:
        choice = await _router(request).choose(request.get(_PRESENTED))
        request[_CHOICE] = choice
    return choice.pool


@web.middleware
async def positions(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in SAFE_METHODS:
        return await _read(request, handler)
    response = await handler(request)
    # Only where reads can lag: without replicas every read is the primary's, and the
    # position would cost each write's answer a wait for one more query, for nothing.
    if response.status < 400 and not response.prepared and _router(request).enabled:
        try:
            # One query for the writes that finish together (each gets a position read after
            # it committed): a query per write took a pool connection twice per request.
            position = format_position(await _router(request).latest())
        except TRANSIENT_ERRORS as exc:
            # The write is done: its answer must not turn into a failure for want of a
            # position. Without one, the client's next read may come from a replica behind it.
            log.warning("commit position not read", extra={"error": repr(exc)})
            return response
        response.headers[HEADER] = position
        response.set_cookie(
            COOKIE, position, max_age=COOKIE_SECONDS, path="/", httponly=True, samesite="Strict"
        )
    return response


async def _read(request: web.Request, handler: Handler) -> web.StreamResponse:
    presented = _presented(request)
    if presented is not None:
        request[_PRESENTED] = presented
    return await answer_read(request, handler)


async def answer_read(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``handler``'s answer to a read; if the replica it read from failed under it, the
    answer it gives on the primary (for handlers that turn database errors into answers of
    their own, like the console's pages)."""
    try:
        return await handler(request)
    except TRANSIENT_ERRORS as exc:
        choice = request.get(_CHOICE)
        if choice is None or choice.replica is None:
            raise
        # A read changes nothing: answering it again from the primary is safe.
        request[_CHOICE] = await _router(request).failed(choice.replica, exc)
        return await handler(request)


def _presented(request: web.Request) -> int | None:
    """The furthest position the request presents (header or cookie), if any; a header that
    is not a position is refused, a stale or mangled cookie ignored."""
    found: list[int] = []
    header = request.headers.get(HEADER)
    if header is not None:
        try:
            found.append(parse_position(header))
        except BadPosition as exc:
            raise WorkflowError(Code.BAD_INPUT, f"{HEADER}: {exc}") from None
    cookie = request.cookies.get(COOKIE)
    if cookie is not None:
        with contextlib.suppress(BadPosition):
            found.append(parse_position(cookie))
    return max(found, default=None)
