"""Group commit of flows' appends: API commands and the reactor's transitions of many flows
share statements, and one flow's refusal or error leaves the others' effects whole."""

from __future__ import annotations

import asyncio

from flowlog.eventstore import EventStore, WrongExpectedVersion, create_pool
from flowlog.projections.verify import verify
from flowlog.workflow.caller import Caller
from flowlog.workflow.events import ContextSet
from flowlog.workflow.idempotency import Idempotency
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.state import FlowStatus
from tests.engines import StartEngine
from tests.workflow.defs import backup_flow
from tests.workflow.helpers import wait_for_status


async def test_concurrent_commands_share_statements_and_a_stale_one_fails_alone(
    start_engine: StartEngine, database_url: str
) -> None:
    engine = await start_engine(backup_flow(), run_reactor=False)
    service = engine.service
    ids = [(await service.create(f"biz-{n}", "t", "backup")).flow_id for n in range(12)]
    states = [await service.flows.load(flow_id) for flow_id in ids]
    # One flow moves on after its state was read: its append below is stale.
    await service.set_context(ids[5], {"moved": True})
    batches_before = service.flows.commits.batches

    appends = [
        service.flows.append(state, [ContextSet(changes={"n": n}, removed=[])])
        for n, state in enumerate(states)
    ]
    outcomes = await asyncio.gather(*appends, return_exceptions=True)

    assert isinstance(outcomes[5], WrongExpectedVersion)
    for n, outcome in enumerate(outcomes):
        if n != 5:
            assert not isinstance(outcome, BaseException)
            assert (await service.flows.load(ids[n])).context["n"] == n
    stale = await service.flows.load(ids[5])
    assert "n" not in stale.context
    assert stale.context["moved"] is True
    assert service.flows.commits.batches - batches_before < len(states)
    await _tables_agree_with_the_log(database_url)


async def test_a_taken_idempotency_key_fails_its_create_and_not_the_batch(
    start_engine: StartEngine, database_url: str
) -> None:
    engine = await start_engine(backup_flow(), run_reactor=False)
    service = engine.service
    key = Caller(actor="script", idempotency=Idempotency("create-once", "tenant-1"))

    async def create(n: int, caller: Caller) -> str:
        return (await service.create(
            "biz-same" if caller is key else f"biz-{n}", "t", "backup", caller=caller,
            tenant_id="tenant-1",
        )).flow_id  # fmt: skip

    results = await asyncio.gather(
        *(create(n, key if n % 4 == 0 else Caller(actor="other")) for n in range(16))
    )

    twins = {results[n] for n in range(0, 16, 4)}
    assert len(twins) == 1  # one effect for the key, the same answer to every twin
    others = [results[n] for n in range(16) if n % 4]
    assert len(set(others)) == 12
    flows = await engine.pool.fetchval("SELECT count(*) FROM workflows")
    assert flows == 13
    await _tables_agree_with_the_log(database_url)


async def test_the_reactor_drives_many_flows_in_shared_statements_to_the_end(
    start_engine: StartEngine, database_url: str
) -> None:
    engine = await start_engine(backup_flow())
    service = engine.service
    created = await asyncio.gather(
        *(service.create(f"biz-{n}", "t", "backup", start=True) for n in range(40))
    )
    ids = [state.flow_id for state in created]
    for flow_id in ids:
        await wait_for_status(service, flow_id, {FlowStatus.FINISHED})
    commits = service.flows.background
    assert engine.reactor is not None
    assert engine.reactor.flows is service.flows
    # 40 flows of 3 nodes: 160 transitions (the creates go in the requests' lane), in fewer
    # statements.
    assert commits.appends >= 160
    assert service.flows.commits.appends >= 40
    assert commits.batches < commits.appends
    await _tables_agree_with_the_log(database_url)


async def test_a_stop_racing_the_reactors_batch_is_recorded_once(
    start_engine: StartEngine, database_url: str
) -> None:
    """Stops sent while the reactor's batches run the same flows: each stop either lands
    before a transition (the transition is then decided again) or after it; never lost, never
    twice, and the other flows of the batches finish."""
    engine = await start_engine(backup_flow())
    service = engine.service
    created = await asyncio.gather(
        *(service.create(f"biz-{n}", "t", "backup", start=True) for n in range(30))
    )
    ids = [state.flow_id for state in created]
    stopped = ids[::3]
    await asyncio.gather(*(service.stop(flow_id) for flow_id in stopped), return_exceptions=True)
    for flow_id in ids:
        state = await service.flows.load(flow_id)
        if flow_id in stopped and state.status is not FlowStatus.FINISHED:
            await wait_for_status(service, flow_id, {FlowStatus.STOPPED})
        else:
            await wait_for_status(service, flow_id, {FlowStatus.FINISHED})
    for flow_id in stopped:
        recorded = await service.store.read_stream(f"flow-{flow_id}")
        assert sum(e.type == "FlowStopped" for e in recorded) <= 1
    await _tables_agree_with_the_log(database_url)


async def _tables_agree_with_the_log(database_url: str) -> None:
    pool = await create_pool(database_url)
    try:
        report = await verify(EventStore(pool), PROJECTOR, progress=False)
    finally:
        await pool.close()
    assert report.ok, report
