"""The inline projection equals the fold of the log, for random histories on a real database."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlog.eventstore import EventStore, create_pool
from flowlog.projections.reads import get_nodes, get_workflow
from flowlog.workflow.projection import node_rows, workflow_row
from flowlog.workflow.streams import flow_stream, fold_recorded
from tests.workflow.test_properties import ACTIONS, DEFINITIONS, write_random_history

COUNTS_VS_ROWS = """
SELECT (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
          (SELECT status, sum(count) AS n FROM workflow_counts
           GROUP BY status HAVING sum(count) <> 0) c),
       (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
          (SELECT status, count(*) AS n FROM workflows GROUP BY status) w)
"""


async def _run_script(url: str, definition_index: int, actions: list[object], flow_id: str) -> None:
    pool = await create_pool(url, max_size=2)
    try:
        store = EventStore(pool)
        state = await write_random_history(store, DEFINITIONS[definition_index], actions, flow_id)
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
    actions=st.lists(ACTIONS, min_size=5, max_size=40),
)
def test_projection_equals_the_fold_for_random_histories(
    database_url: str, definition_index: int, actions: list[object]
) -> None:
    asyncio.run(_run_script(database_url, definition_index, actions, str(uuid.uuid4())))
