"""The webhook tests run the whole service, as the REST API's tests do (make_service); the
delivery tests have a receiver, and engines that deliver to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowlog.engine import Engine
from flowlog.webhooks.sender import DeliveryTuning
from flowlog.webhooks.settings import WebhookSettings
from flowlog.workflow.definition import Registry
from tests.api.conftest import make_service
from tests.engines import FAST
from tests.webhooks.delivering import DEFINITIONS, LOCAL, QUICK, StartDelivering
from tests.webhooks.receiver import Receiver

__all__ = ["make_service"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    await made.start()
    yield made
    await made.stop()


@pytest.fixture
async def delivering(database_url: str, runtime_url: str) -> AsyncIterator[StartDelivering]:
    """Starts engines that deliver webhooks (as the runtime role, as in production)."""
    engines: list[Engine] = []

    async def start(
        settings: WebhookSettings = LOCAL, tuning: DeliveryTuning = QUICK, reactor: bool = True
    ) -> Engine:
        engine = Engine(runtime_url, Registry(DEFINITIONS), reactor=FAST, owner_url=database_url,
                        run_reactor=reactor, webhooks=settings, webhook_tuning=tuning)  # fmt: skip
        await engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in reversed(engines):
        await engine.stop()
