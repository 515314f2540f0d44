"""The HTTP service's skeleton: start-up order, health and readiness, the envelope."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from flowlog.api import keys
from flowlog.config import Settings
from flowlog.web import create_app


async def test_health_and_readiness_answer_in_the_seed_envelope(
    empty_database_url: str,
) -> None:
    app = create_app(Settings.from_env({}), empty_database_url)
    async with TestClient(TestServer(app)) as client:
        health = await client.get("/healthz")
        assert health.status == 200
        assert await health.json() == {
            "code": 0,
            "message": "OK",
            "data": {"status": "ok", "checks": {}},
        }

        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 200
        assert body["data"] == {
            "status": "ready",
            "checks": {"database": True, "listener": True},
            "replicas": [],
            "stranded": [],
        }

        # Start-up migrated the empty database before serving.
        assert await app[keys.ENGINE].pool.fetchval("SELECT count(*) FROM schema_migrations") >= 1


async def test_readiness_reports_a_lost_listener(database_url: str) -> None:
    app = create_app(Settings.from_env({}), database_url)
    async with TestClient(TestServer(app)) as client:
        await app[keys.ENGINE].listener.close()
        ready = await client.get("/readyz")
        assert ready.status == 503
        body = await ready.json()
        assert body["code"] != 0
        assert body["data"]["checks"]["listener"] is False


async def test_unknown_routes_are_404(database_url: str) -> None:
    app = create_app(Settings.from_env({}), database_url)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/nope")).status == 404
