"""The fan-out's choice for a batch that starts in the middle of flows' histories (as after a
restart, a replay, or a cursor made while flows run): the status after each event comes from
the last status-changing event before the batch, looked up in the log; other tenants' flows,
other definitions and archived flows are left out."""

from __future__ import annotations

import asyncpg

from flowlog.eventstore import EventStore
from flowlog.webhooks.fanout import Subscriber, wanted
from tests.helpers import eventually
from tests.webhooks.delivering import StartDelivering


def _subscriber(tenant: str = "acme", definitions: frozenset[str] | None = None,
                statuses: frozenset[str] | None = None) -> Subscriber:  # fmt: skip
    return Subscriber("wh_test", tenant, frozenset({"NodeFailed", "FlowFailed", "NodeStarted"}),
                      definitions, statuses, "active")  # fmt: skip


async def test_a_batch_in_the_middle_of_a_history_knows_the_status_before_it(
    pool: asyncpg.Pool, delivering: StartDelivering
) -> None:
    engine = await delivering()
    flow = await engine.service.create("b", "d", "failing", start=True, tenant_id="acme")
    stream = f"flow-{flow.flow_id}"

    async def ended() -> bool:
        return bool(await pool.fetchval(
            "SELECT status = 'Error' FROM workflows WHERE id = $1", flow.flow_id))  # fmt: skip

    await eventually(ended, what="the flow's end")
    store = EventStore(pool)
    history = await store.read_stream(stream)
    types = [e.type for e in history]
    started = types.index("NodeStarted")
    failed = types.index("NodeFailed")
    async with store.transaction() as tx:
        # Only the events from the node's start on: FlowStarted is before the batch.
        found = await wanted(tx, _subscriber(), history[started:])
        assert [(w.event_type, w.status) for w in found] == [
            ("NodeStarted", "Processing"), ("NodeFailed", "Processing"), ("FlowFailed", "Error"),
        ]  # fmt: skip
        assert all(w.stream_id == stream for w in found)
        # The NodeFailed alone: still Processing (its flow ends after it, by FlowFailed).
        [alone] = await wanted(tx, _subscriber(), history[failed : failed + 1])
        assert alone.status == "Processing"
        # Filters: statuses after the event, definitions, and the tenant.
        only_error = await wanted(tx, _subscriber(statuses=frozenset({"Error"})), history)
        assert [w.event_type for w in only_error] == ["FlowFailed"]
        assert await wanted(tx, _subscriber(definitions=frozenset({"passing"})), history) == []
        assert await wanted(tx, _subscriber(tenant="other"), history) == []
        assert await wanted(tx, _subscriber(tenant=""), history) == []
    # Archived away: its row is gone (as archival leaves it), and it is skipped.
    await pool.execute("DELETE FROM workflows WHERE id = $1", flow.flow_id)
    async with store.transaction() as tx:
        assert await wanted(tx, _subscriber(), history) == []
