"""The operator's routes: liveness, readiness, Prometheus metrics, and the API's own
OpenAPI document and interactive page (all open without a token)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp_jinja2
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from flowlog.access.roles import ANYONE
from flowlog.api import keys
from flowlog.api.context import context_of
from flowlog.api.errors import json_response
from flowlog.api.operations import Api
from flowlog.replicas.position import format_position
from flowlog.wire.health import Health, Readiness, Ready, ReplicaHealth, StrandedVersion
from flowlog.workflow.errors import Code
from flowlog.workflow.versions import awaiting

api = Api()
OPS = ("operations",)


@api.route("GET", "/healthz", summary="Liveness", response=Health, errors=(), tags=OPS, role=ANYONE)
async def healthz(request: web.Request) -> Health:
    return Health(status="ok")


@api.route(
    "GET",
    "/readyz",
    summary="Readiness: the database and the notification listener (and flows stranded by a "
    "deploy, which do not make it unready)",
    response=Readiness,
    raw=True,
    errors=(503,),
    tags=OPS,
    role=ANYONE,
)
async def readyz(request: web.Request) -> web.Response:
    engine = request.app[keys.ENGINE]
    checks = {"database": False, "listener": engine.listener.connected}
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2):
            checks["database"] = await engine.pool.fetchval("SELECT true") is True
    ready = all(checks.values())
    stranded: list[StrandedVersion] = []
    if ready:
        # A detail, never a reason to be unready: a deploy's stranded flows need a person,
        # and taking this process out of service would not run them (docs/operations.md).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                stranded = [
                    StrandedVersion(definition=a.definition, version=a.version, flows=a.flows)
                    for a in await awaiting(engine.pool)
                ]
    replicas = [
        ReplicaHealth(
            name=r.name,
            state=r.state.value,
            lagSeconds=None if r.lag_seconds is None else round(r.lag_seconds, 3),
            replayed=format_position(r.replayed) if r.replayed else None,
            error=r.error,
        )
        for r in engine.reads.replicas
    ]
    health = Ready(
        status="ready" if ready else "not ready", checks=checks, replicas=replicas,
        stranded=stranded,
    )  # fmt: skip
    if ready:
        answer = Readiness(data=health)
    else:
        answer = Readiness(code=Code.UNAVAILABLE, message="not ready", data=health)
    return json_response(answer.model_dump(mode="json"), 200 if ready else 503)


@api.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    response=None,
    raw=True,
    errors=(),
    media_type="text/plain",
    tags=OPS,
    role=ANYONE,
)
async def metrics(request: web.Request) -> web.Response:
    engine = request.app[keys.ENGINE]
    reactor = engine.reactor
    busy, parked, polls = (
        (0, 0, 0) if reactor is None
        else (reactor.busy, len(reactor.parking), reactor.parking.polls)
    )  # fmt: skip
    request.app[keys.METRICS].observe_replicas(engine.reads.replicas)
    deliveries = None if engine.deliveries is None else engine.deliveries.counts
    limit = 0 if reactor is None else reactor.limit.limit
    body = await request.app[keys.METRICS].render(
        engine.pool, busy, parked, polls, deliveries, concurrency_limit=limit
    )
    # Prometheus's text exposition format names its version in the Content-Type.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@api.route(
    "GET",
    "/api/v1/openapi.json",
    summary="This document",
    response=None,
    raw=True,
    errors=(),
    tags=OPS,
    role=ANYONE,
)
async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[keys.OPENAPI])


@api.route(
    "GET",
    "/api/v1/docs",
    summary="The API, interactive (Swagger UI, served from this server: works offline)",
    response=None,
    raw=True,
    errors=(),
    media_type="text/html",
    tags=OPS,
    role=ANYONE,
)
async def docs(request: web.Request) -> web.Response:
    session = context_of(request).session
    values = {"csrf_token": session.csrf_token if session is not None else ""}
    return aiohttp_jinja2.render_template("apidocs.html.j2", request, values)
