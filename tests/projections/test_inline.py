"""The inline projection equals the fold of the log, for random histories on a real database."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.workflow.decide import CreateFlow, StaleOutcome, decide, decide_and_advance
from app.workflow.errors import WorkflowError
from app.workflow.history import flow_stream, fold_recorded
from app.workflow.projection import node_rows, workflow_row
from app.workflow.repository import FlowRepository
from eventstore import EventStore, WrongExpectedVersion, create_pool
from projections.reads import get_nodes, get_workflow
from tests.workflow.harness import REACTOR, Memory
from tests.workflow.test_properties import ACTIONS, DEFINITIONS, command_for

COUNTS_VS_ROWS = """
SELECT (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
          (SELECT status, sum(count) AS n FROM workflow_counts
           GROUP BY status HAVING sum(count) <> 0) c),
       (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
          (SELECT status, count(*) AS n FROM workflows GROUP BY status) w)
"""


async def _run_script(url: str, definition_index: int, actions: list[object], flow_id: str) -> None:
    definition = DEFINITIONS[definition_index]
    pool = await create_pool(url, max_size=2)
    try:
        store = EventStore(pool)
        flows = FlowRepository(store)
        memory = Memory(definition)  # only to turn actions into commands
        state = await flows.append(
            None,
            decide(
                None, CreateFlow(flow_id, "biz", "test", "t1", {"a": 0}), definition, flows.clock()
            ),
        )
        memory.state = state
        for action in actions:
            command = command_for(memory, action)
            if command is None:
                continue
            choose = decide_and_advance if type(command).__name__ in REACTOR else decide
            try:
                events = choose(state, command, definition, memory.now)
            except (WorkflowError, StaleOutcome):
                continue
            if not events:
                continue
            try:
                state = await flows.append(state, events)
            except WrongExpectedVersion:
                raise AssertionError("nobody else writes this flow") from None
            memory.state = state
        # The state the repository returned is the fold of what it stored...
        stored = fold_recorded(await store.read_stream(flow_stream(flow_id)))
        assert stored == state
        # ...and the tables hold exactly the rows of that fold.
        assert await get_workflow(pool, flow_id) == workflow_row(stored)
        assert await get_nodes(pool, flow_id) == node_rows(stored)
        counts = await pool.fetchrow(COUNTS_VS_ROWS)
        assert counts is not None
        assert counts[0] == counts[1]
    finally:
        await pool.close()


# One database for all examples, on purpose: every example writes a flow of its own, and the
# counts must agree with the rows across all of them.
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    definition_index=st.integers(0, len(DEFINITIONS) - 1),
    actions=st.lists(ACTIONS, min_size=1, max_size=40),
)
def test_projection_equals_the_fold_for_random_histories(
    database_url: str, definition_index: int, actions: list[object]
) -> None:
    asyncio.run(_run_script(database_url, definition_index, actions, str(uuid.uuid4())))
