"""The HTTP service: an app factory that does no I/O; resources open and close in cleanup_ctx.

Start-up runs the engine: migrations, pool, horizon check, notifier, event store, LISTEN
connection, service, reactor. Teardown runs in reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from app import keys
from app.config import Settings
from app.workflow.definition import Registry
from app.workflow.engine import Engine

log = logging.getLogger(__name__)

_READY_TIMEOUT = 2.0


def envelope(data: Any, *, code: int = 0, message: str = "OK", status: int = 200) -> web.Response:
    """The seed's response envelope: ``{"code", "message", "data"}``."""
    body = orjson.dumps({"code": code, "message": message, "data": data})
    return web.Response(body=body, status=status, content_type="application/json")


async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the process serves requests."""
    return envelope({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers and the LISTEN connection is up."""
    engine = request.app[keys.ENGINE]
    checks = {"database": False, "listener": engine.listener.connected}
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            checks["database"] = await engine.pool.fetchval("SELECT true") is True
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        log.warning("readiness check failed", extra={"error": repr(exc)})
    if all(checks.values()):
        return envelope({"status": "ready", "checks": checks})
    return envelope(
        {"status": "not ready", "checks": checks}, code=50300, message="not ready", status=503
    )


async def _engine(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine = Engine(
        app[keys.DATABASE_URL],
        app[keys.REGISTRY],
        reactor=settings.reactor,
        run_reactor=settings.run_reactor,
        pool_size=settings.pool_size,
    )
    await engine.start()
    app[keys.ENGINE] = engine
    try:
        yield
    finally:
        await engine.stop()


def create_app(
    settings: Settings, database_url: str, registry: Registry | None = None
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[keys.SETTINGS] = settings
    app[keys.DATABASE_URL] = database_url
    app[keys.REGISTRY] = registry or Registry()
    app.cleanup_ctx.append(_engine)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
