"""What a callback completion costs the database, counted: the statements the completion
itself sends (docs/benchmarks.md, ``flowlog bench callbacks``, counts them from the request
to the next node's start, the reactor's share too)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from flowlog.eventstore.statements import count_statements, recording
from flowlog.workflow.caller import Caller
from flowlog.workflow.idempotency import Idempotency
from flowlog.workflow.service import Completion
from tests.api.conftest import MakeService
from tests.api.helpers import DEFINITIONS, create, ok, post, wait_status
from tests.api.test_callbacks import approval_spec, waiting_token


@pytest.fixture
def counting() -> Iterator[None]:
    count_statements()
    yield
    count_statements(False)


OPERATOR = Caller("ops")


async def completion_statements(make_service: MakeService, caller: Caller = OPERATOR) -> list[str]:
    service = await make_service()
    await ok(await post(service.client, DEFINITIONS, approval_spec()))
    flow_id = await create(service.client, "change-approval")
    token = await waiting_token(service.client, flow_id)
    with recording() as statements:
        await service.engine.service.complete_callback(Completion(True, token=token), caller)
        await asyncio.sleep(0)  # the last statement's logger runs a loop turn later
    await wait_status(service.client, flow_id, {"Finished"})
    return statements


@pytest.mark.usefixtures("counting")
async def test_a_completion_by_token_is_two_statements(make_service: MakeService) -> None:
    statements = await completion_statements(make_service)

    # The flow's stream with its row's tenant (one read), and the append that records the
    # outcome and starts the next node.
    assert len(statements) == 2, statements


@pytest.mark.usefixtures("counting")
async def test_with_an_idempotency_key_one_statement_more(make_service: MakeService) -> None:
    keyed = Caller("ops", idempotency=Idempotency("approve-1", ""))
    statements = await completion_statements(make_service, keyed)

    # The key is looked up first; the append records it with the effect.
    assert len(statements) == 3, [s.split("\n")[0][:80] for s in statements]
