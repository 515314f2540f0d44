"""The request span: the outermost middleware, so that it covers everything a request does
(its events record this span as their trace context)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from flowlog.telemetry import tracing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
    current = tracing()
    if not current.enabled:
        return await handler(request)
    resource = request.match_info.route.resource
    route = "unmatched" if resource is None else resource.canonical
    with current.request(request.method, route, request.headers) as span:
        response = await handler(request)
        span.set("http.response.status_code", response.status)
        return response
