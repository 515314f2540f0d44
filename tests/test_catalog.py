"""A reactor that knew no definition at all runs the flows of one registered over REST by
another process, once its catalog has loaded it (it had no reason to look for work before)."""

from __future__ import annotations

import asyncio

from flowlog.builtins import definition_from_spec
from flowlog.engine import Engine
from flowlog.workflow.definition import Registry

SPEC = {"name": "late", "nodes": {"start": {"name": "only", "executor": {"type": "noop"}}}}


async def test_a_reactor_without_definitions_runs_flows_of_one_it_learns_later(
    database_url: str,
) -> None:
    async with (
        Engine(database_url, Registry(), catalog_interval=0.2) as worker,
        Engine(database_url, Registry(), run_reactor=False) as api,
    ):
        await asyncio.sleep(0.3)  # the worker's reactor has looked, found nothing to run
        await api.service.register_workflow(definition_from_spec(SPEC))
        flow = await api.service.create("b", "t", "late", start=True)
        for _ in range(100):
            if (await api.service.get(flow.flow_id)).terminal:
                break
            await asyncio.sleep(0.1)
        assert (await api.service.get(flow.flow_id)).status.value == "Finished"
        assert worker.registry.by_name("late") is not None
