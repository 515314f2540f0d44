"""Waiting for flows in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Container

from app.workflow.service import WorkFlowService
from app.workflow.state import FlowState, FlowStatus


async def wait_for_status(
    service: WorkFlowService,
    flow_id: str,
    statuses: Container[FlowStatus],
    within: float = 20.0,
) -> FlowState:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        state = await service.get(flow_id)
        if state.status in statuses:
            return state
        assert loop.time() < deadline, f"flow stayed {state.status}: {state}"
        await asyncio.sleep(0.01)


async def wait_until(probe: object, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    assert callable(probe)
    while not probe():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)
