"""The audit invariants, checked on whatever flows a test left in its database: the history
tells every event with its actor and a summary, and at every version SQL's flow_state() and
Python's replay give the same document, whose last state is the projection's."""

from __future__ import annotations

from flowlog.audit.document import state_document
from flowlog.audit.history import read_history
from flowlog.audit.queries import Q
from flowlog.audit.replay import fold_until
from flowlog.eventstore import EventReader, connect
from flowlog.projections.reads import get_workflow
from flowlog.workflow.streams import FLOW_STREAM

FLOW_IDS = "SELECT DISTINCT substr(stream_id, $1) FROM events WHERE stream_id LIKE $2"


async def check_audit_of_every_flow(database_url: str) -> int:
    """Checks every flow of the database; returns how many there were."""
    conn = await connect(database_url)
    try:
        store = EventReader(conn)
        flow_ids = [
            r[0] for r in await conn.fetch(FLOW_IDS, len(FLOW_STREAM) + 1, FLOW_STREAM + "%")
        ]
        for flow_id in flow_ids:
            recorded = await store.read_stream(FLOW_STREAM + flow_id)
            lines = await read_history(conn, flow_id)
            assert [line.version for line in lines] == [e.version for e in recorded]
            assert all(line.summary and line.actor for line in lines), lines
            for stored in recorded:
                state = fold_until(recorded, stored.version)
                assert state is not None
                in_sql = await conn.fetchval(Q.state_at_version, flow_id, stored.version)
                assert in_sql == state_document(state), (flow_id, stored.version)
            row = await get_workflow(conn, flow_id)
            assert row is not None
            assert (row.status, row.stream_version) == (in_sql["status"], in_sql["version"])
        return len(flow_ids)
    finally:
        await conn.close()
