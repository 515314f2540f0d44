"""The HTTP service: an app factory that does no I/O; resources open and close in cleanup_ctx.

Order of start-up: migrate, pool + notifier + event store, LISTEN connection. Teardown runs in
reverse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from app import keys
from app.config import Settings
from app.migrate import migrate_database
from eventstore import (
    EventStore,
    Listener,
    Notifier,
    check_log_horizon,
    connect,
    create_pool,
)

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
    app = request.app
    checks = {"database": False, "listener": app[keys.LISTENER].connected}
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            checks["database"] = await app[keys.POOL].fetchval("SELECT true") is True
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        log.warning("readiness check failed", extra={"error": repr(exc)})
    if all(checks.values()):
        return envelope({"status": "ready", "checks": checks})
    return envelope(
        {"status": "not ready", "checks": checks}, code=50300, message="not ready", status=503
    )


async def _database(app: web.Application) -> AsyncIterator[None]:
    url = app[keys.DATABASE_URL]
    applied = await migrate_database(url)
    log.info("database migrated", extra={"applied": applied})
    pool = await create_pool(url, max_size=app[keys.SETTINGS].pool_size)
    try:
        await check_log_horizon(pool)
    except BaseException:
        await pool.close()
        raise
    notifier = Notifier(pool)
    notifier.start()
    app[keys.POOL] = pool
    app[keys.NOTIFIER] = notifier
    app[keys.STORE] = EventStore(pool, on_commit=notifier.wake)
    try:
        yield
    finally:
        await notifier.close()
        await pool.close()


async def _listener(app: web.Application) -> AsyncIterator[None]:
    listener = Listener(partial(connect, app[keys.DATABASE_URL]))
    await listener.start()
    app[keys.LISTENER] = listener
    try:
        yield
    finally:
        await listener.close()


def create_app(settings: Settings, database_url: str) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[keys.SETTINGS] = settings
    app[keys.DATABASE_URL] = database_url
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_listener)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
