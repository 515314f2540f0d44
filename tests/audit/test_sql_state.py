"""SQL's flow_state() is the fold written again for psql: at every version, and at every
recorded time, of random histories on a real database, it gives the very document that
``flowlog replay`` (Python's fold) gives."""

from __future__ import annotations

import asyncio
import uuid

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlog.audit.document import state_document
from flowlog.audit.queries import Q
from flowlog.audit.replay import diff_documents, fold_until
from flowlog.eventstore import EventStore, create_pool
from flowlog.workflow.streams import flow_stream
from tests.workflow.test_properties import ACTIONS, DEFINITIONS, write_random_history


async def _compare(url: str, definition_index: int, actions: list[object], flow_id: str) -> None:
    pool = await create_pool(url, max_size=2)
    try:
        store = EventStore(pool)
        final = await write_random_history(store, DEFINITIONS[definition_index], actions, flow_id)
        recorded = await store.read_stream(flow_stream(flow_id))
        assert recorded[-1].version == final.version
        previous = None
        for stored in recorded:
            folded = fold_until(recorded, stored.version)
            assert folded is not None
            expected = state_document(folded)
            in_sql = await pool.fetchval(Q.state_at_version, flow_id, stored.version)
            assert in_sql == expected, f"version {stored.version}"
            # The document is plain JSON: what SQL returns survives a round trip unchanged.
            assert orjson.loads(orjson.dumps(in_sql)) == in_sql
            # A point in time is the longest prefix recorded by then: the same in both.
            at_time = await pool.fetchval(Q.state_as_of, flow_id, stored.recorded_at)
            by_time = fold_until(recorded, stored.recorded_at)
            assert by_time is not None
            assert at_time == state_document(by_time)
            # Every event changes the document (the version, at least), and a diff between
            # a point and itself is empty.
            assert diff_documents(expected, expected) == []
            assert diff_documents(previous, expected) != []
            previous = expected
        before = await pool.fetchval(
            Q.state_as_of, flow_id, recorded[0].recorded_at.replace(year=2000)
        )
        assert before is None
        assert await pool.fetchval(Q.state_at_version, "no-such-flow", 1) is None
    finally:
        await pool.close()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    definition_index=st.integers(0, len(DEFINITIONS) - 1),
    actions=st.lists(ACTIONS, min_size=5, max_size=40),
)
def test_sql_state_equals_the_fold_at_every_point(
    database_url: str, definition_index: int, actions: list[object]
) -> None:
    asyncio.run(_compare(database_url, definition_index, actions, str(uuid.uuid4())))
