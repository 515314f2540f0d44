"""Fixtures for the workflow engine on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.workflow.definition import Registry, WorkflowDefinition
from app.workflow.engine import Engine
from app.workflow.reactor import ReactorSettings

# Short leases and heartbeats: the tests wait for them.
FAST = ReactorSettings(
    concurrency=16, lease_seconds=2.0, heartbeat_seconds=0.1, poll_interval=0.5, shutdown_grace=2
)

StartEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def start_engine(database_url: str) -> AsyncIterator[StartEngine]:
    """Starts engines (API + reactor) on the test database; all are stopped afterwards."""
    engines: list[Engine] = []

    async def start(
        *definitions: WorkflowDefinition,
        settings: ReactorSettings = FAST,
        run_reactor: bool = True,
    ) -> Engine:
        engine = Engine(
            database_url, Registry(definitions), reactor=settings, run_reactor=run_reactor
        )
        await engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in reversed(engines):
        await engine.stop()
