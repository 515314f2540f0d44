"""Waiting for flows in tests."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Container

from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState, FlowStatus


async def wait_for_status(
    service: WorkflowService,
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


def assert_clean_history(types_and_data: list[tuple[str, dict[str, object]]]) -> None:
    """No double transition: each node execution starts once and ends at most once, and each
    node key succeeds at most once."""
    started: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    succeeded_keys: Counter[str] = Counter()
    key_of: dict[str, str] = {}
    for event_type, data in types_and_data:
        node_id = data.get("node_id")
        if event_type == "NodeStarted":
            started[str(node_id)] += 1
            key_of[str(node_id)] = str(data["key"])
        elif event_type in {"NodeSucceeded", "NodeFailed"} or (
            event_type == "FlowCanceled" and node_id
        ):
            ended[str(node_id)] += 1
            if event_type == "NodeSucceeded":
                succeeded_keys[key_of[str(node_id)]] += 1
    assert set(started.values()) <= {1}, started
    assert set(ended.values()) <= {1}, ended
    assert set(ended) <= set(started)
    assert set(succeeded_keys.values()) <= {1}, succeeded_keys
