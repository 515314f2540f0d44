"""Fixtures of the REST API tests: the whole service (engine, reactor, a fresh migrated
PostgreSQL database per test) behind aiohttp's test client, with a few quick definitions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flowlog.api import keys
from flowlog.config import Settings
from flowlog.engine import Engine
from flowlog.roles import DatabaseUrls
from flowlog.web import create_app
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.errors import NodeError
from flowlog.workflow.executor import FlowContext, NodeHandle
from tests.workflow.defs import backup_flow, noop

TOKENS = "alice:token-a:tenant-a,bob:token-b:tenant-b"
"""Two tenants, one token each."""


class Gate:
    """An executor that waits until the test opens it (every gate opens at teardown)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    def describe(self) -> dict[str, Any]:
        return {"executor": "gate"}

    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> None:
        self.entered.set()
        await self.opened.wait()
        node.record("through the gate")


async def fussy(node: NodeHandle, ctx: FlowContext) -> None:
    """Fails until the context says ``ok``."""
    if not ctx.get("ok"):
        raise NodeError("ok is not set", code=7001)
    node.record("ok")


def gated_flow(gate: Gate) -> WorkflowDefinition:
    """prepare -> hold (waits for the gate) -> finish."""
    return WorkflowDefinition(
        "gated",
        {
            "start": NodeDefinition("prepare", noop, success="hold"),
            "hold": NodeDefinition("hold", gate, success="finish"),
            "finish": NodeDefinition("finish", noop),
        },
    )


def fussy_flow(name: str = "fussy", fail: str = "") -> WorkflowDefinition:
    """check (fails unless ctx["ok"]) -> done; a failure ends the flow (or pauses it)."""
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("check", fussy, success="done", fail=fail),
            "done": NodeDefinition("done", noop),
        },
    )


@dataclasses.dataclass
class Service:
    """One running service: its test client, application and the gate of the gated flow."""

    client: TestClient[web.Request, web.Application]
    app: web.Application
    gate: Gate
    registry: Registry

    @property
    def engine(self) -> Engine:
        return self.app[keys.ENGINE]


MakeService = Callable[..., Awaitable[Service]]


@pytest.fixture
async def make_service(database_url: str, runtime_url: str) -> AsyncIterator[MakeService]:
    """Starts services on the test database (``tokens=TOKENS`` to require bearer tokens), as
    in production: serving as a runtime role, migrating as the owner. Leases (a reactor's, a
    task's) last ``lease_seconds``: short, so that lost workers are found quickly. ``env``:
    more settings, as the environment would give them (``FLOWLOG_OIDC_*``...). ``reactor``:
    False for a service that only answers (no reactor, so no webhook delivery either)."""
    made: list[Service] = []

    async def make(
        *, tokens: str = "", lease_seconds: float = 2.0, env: Mapping[str, str] | None = None,
        reactor: bool = True,
    ) -> Service:  # fmt: skip
        gate = Gate()
        registry = Registry(
            [backup_flow(), gated_flow(gate), fussy_flow(), fussy_flow("pausing", fail="pause")]
        )
        settings = Settings.from_env(env or {}).model_copy(
            update={
                "tokens": tokens,
                "concurrency": 8,
                "lease_seconds": lease_seconds,
                "pool_size": 5,
                "run_reactor": reactor,
            }
        )
        app = create_app(settings, DatabaseUrls(runtime_url, database_url), registry)
        client = TestClient(TestServer(app))
        await client.start_server()
        service = Service(client, app, gate, registry)
        made.append(service)
        return service

    yield make
    for service in reversed(made):
        service.gate.opened.set()  # no executor may hold the reactor's shutdown
        await service.client.close()


@pytest.fixture
async def service(make_service: MakeService) -> Service:
    """An open service (no tokens)."""
    return await make_service()


@pytest.fixture
def client(service: Service) -> TestClient[web.Request, web.Application]:
    return service.client
