"""The HTTP service: an app factory that does no I/O; resources open and close in cleanup_ctx.

Start-up runs the engine (app/engine.py): migrations, pool, horizon check, read router,
notifier, event store, LISTEN connection, service, definition catalog, reactor and scheduler,
archive loop; then, with ``--demo``, the demo flows are made; with single sign-on, the
identity provider's client gets its HTTP session. Teardown runs in reverse.

A request passes the tracing middleware, the API's (app/api/middleware.py: who asks, forgery,
idempotency keys, errors, metrics, the access log) and the read routing's
(app/api/replicas.py), then its route: the REST API's (app/api/routes.py) or the console's
(app/console/).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp import web

from flowlog.access.limiter import Coalescer
from flowlog.access.oidc import OidcClient
from flowlog.access.ring import KeyRing
from flowlog.access.roles import Role
from flowlog.access.tokens import Tokens
from flowlog.api import keys
from flowlog.api.authorize import REFUSAL_WINDOW, REFUSALS
from flowlog.api.bad_http import quiet_bad_requests
from flowlog.api.metrics import Metrics
from flowlog.api.middleware import CONSOLE_ROUTES, make_middlewares
from flowlog.api.operations import alias_of
from flowlog.api.replicas import positions
from flowlog.api.routes import api
from flowlog.config import Settings
from flowlog.console import role_of_route, setup_console
from flowlog.engine import Engine
from flowlog.roles import DatabaseUrls
from flowlog.telemetry.http import traced
from flowlog.wire.base import MAX_BODY
from flowlog.workflow.definition import Registry

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"


async def _engine(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine = Engine(
        app[keys.DATABASE].url,
        app[keys.REGISTRY],
        owner_url=app[keys.DATABASE].owner_url,
        reactor=settings.reactor,
        run_reactor=settings.run_reactor,
        pool_size=settings.pool_size,
        observe=app[keys.METRICS].observe_node,
        observe_fire=app[keys.METRICS].fire_delay.observe,
        reads=settings.reads,
        observe_read=app[keys.METRICS].observe_read,
        archive=settings.archive,
        archive_interval=settings.archive_interval,
        retention=settings.retention,
        access=app[keys.ACCESS],
        webhooks=settings.webhooks,
    )
    await engine.start()
    app[keys.ENGINE] = engine
    seeding = asyncio.create_task(_seed_demo(app)) if settings.demo else None
    try:
        yield
    finally:
        if seeding is not None:
            seeding.cancel()
            await asyncio.gather(seeding, return_exceptions=True)
        await engine.stop()


async def _identity_provider(app: web.Application) -> AsyncIterator[None]:
    """The identity provider's client, with its HTTP session (no cookies kept: the provider's
    are the person's, not this service's). Nothing is asked of the provider here: discovery
    waits for the first log-in, so the server starts while the provider is down."""
    settings = app[keys.SETTINGS].oidc
    if settings is None:
        yield
        return
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        app[keys.OIDC] = OidcClient(settings, session)
        yield


async def _seed_demo(app: web.Application) -> None:
    from flowlog import demo

    tenants = app[keys.ACCESS].tokens.tenants or [""]
    try:
        engine = app[keys.ENGINE]
        created = await demo.seed(engine.service, tenants, engine.schedules)
    except Exception:
        log.exception("demo flows not created")
        return
    if created:
        log.info("demo flows created", extra={"flows": created})


async def _end_streams(app: web.Application) -> None:
    # Runs before the server waits for handlers: an open event stream would hold it up to
    # the shutdown timeout (a stopped flow's stream can stay open for days).
    app[keys.SHUTTING_DOWN].set()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (for ``web.run_app(sock=...)``): bound before
    anything else starts, so a taken port is known at once. Raises OSError (socket.gaierror
    for a host that does not resolve)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def create_app(
    settings: Settings, database: DatabaseUrls | str, registry: Registry | None = None
) -> web.Application:
    """The service: ``database`` is its URLs (a plain URL: one role serves and migrates)."""
    access = KeyRing(Tokens.parse(settings.tokens), single_sign_on=settings.oidc is not None)
    metrics = Metrics()
    quiet_bad_requests()
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[
            traced,
            *make_middlewares(
                access, metrics.observe_request, timedelta(hours=settings.idempotency_hours)
            ),
            positions,
        ],
    )
    app[keys.SETTINGS] = settings
    app[keys.DATABASE] = DatabaseUrls(database) if isinstance(database, str) else database
    app[keys.REGISTRY] = registry or Registry()
    app[keys.ACCESS] = access
    app[REFUSALS] = Coalescer(REFUSAL_WINDOW)
    app[keys.METRICS] = metrics
    app[keys.SHUTTING_DOWN] = asyncio.Event()
    app.on_shutdown.append(_end_streams)
    app[keys.OPENAPI] = api.openapi(title="flowlog", version=API_VERSION)
    app.cleanup_ctx.append(_engine)
    app.cleanup_ctx.append(_identity_provider)
    api.install(app)
    setup_console(app)
    return app


@dataclass(frozen=True, slots=True)
class RouteRole:
    method: str
    path: str
    role: Role | None
    """The least role that may call it (None: anyone)."""
    console: bool


def route_roles(app: web.Application) -> list[RouteRole]:
    """Every route of the service with the role it needs, from the declarations next to the
    routes (the REST API's ``Api.route(role=...)``, the console's ``PAGES``): LookupError for
    a route that declares none."""
    declared = {}
    for op in api.operations:
        for path in filter(None, (op.path, alias_of(op.path))):
            declared[op.method, path] = op.role
    found: dict[tuple[str, str], RouteRole] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or (route.method, path) in found:
            continue
        if (route.method, path) in declared:
            role, console = declared[route.method, path], False
        elif (route.name or "").startswith(CONSOLE_ROUTES):
            role, console = role_of_route(route.name or ""), True
        else:
            raise LookupError(f"{route.method} {path} declares no role")
        found[route.method, path] = RouteRole(route.method, path, role, console)
    return list(found.values())


def roles_markdown(app: web.Application) -> str:
    """docs/api.md's table of every route and the roles that may call it."""
    lines = [
        "| route | least role | viewer | operator | admin | superadmin |",
        "|---|---|---|---|---|---|",
    ]
    entries = route_roles(app)
    spelled = {(entry.method, entry.path) for entry in entries}
    for entry in entries:
        if (entry.method, entry.path + "/") in spelled:
            continue  # a collection's other spelling (without its slash): the API's is listed
        marks = " | ".join("yes" if role.allows(entry.role) else "no" for role in Role)
        least = "anyone" if entry.role is None else entry.role.value
        where = " (console)" if entry.console else ""
        lines.append(f"| `{entry.method} {entry.path}`{where} | {least} | {marks} |")
    return "\n".join(lines) + "\n"
