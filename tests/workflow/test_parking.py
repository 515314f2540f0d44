"""Parked flows: a polling node waiting on its operation holds no drive and costs no write or
read per poll; its worker keeps the lease, hands it back on shutdown, and loses it to others
only when it is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flowlog.engine import Engine
from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.executor import Finished, FlowContext, NodeHandle, PollResult, Running
from flowlog.workflow.reactor_settings import ReactorSettings
from flowlog.workflow.state import FlowState, FlowStatus, NodeStatus
from tests.engines import StartEngine
from tests.workflow.defs import noop
from tests.workflow.helpers import wait_for_status, wait_until

# A long lease (renewed every 10 s) and a quick change check, as a test wants them.
LONG_LEASE = ReactorSettings(
    concurrency=8, lease_seconds=30, heartbeat_seconds=0.1, poll_interval=0.5, shutdown_grace=2
)


class Operation:
    """An outside operation, polled: running until ``done`` is set."""

    def __init__(self) -> None:
        self.done = False
        self.polls = 0
        self.polled = asyncio.Event()

    async def submit(self, node: NodeHandle, ctx: FlowContext) -> str:
        return "op-1"

    async def poll(self, node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
        self.polls += 1
        self.polled.set()
        return Finished("done") if self.done else Running()

    def definition(self, interval: float = 0.02) -> WorkflowDefinition:
        return WorkflowDefinition(
            "waits",
            {
                "start": NodeDefinition(
                    "wait",
                    self.submit,
                    kind=NodeKind.POLLING,
                    poll=self.poll,
                    poll_interval=interval,
                    poll_deadline=60,
                    success="after",
                ),
                "after": NodeDefinition("after", noop),
            },
        )

    async def until_polled(self, times: int) -> None:
        async with asyncio.timeout(10):
            while self.polls < times:
                self.polled.clear()
                await self.polled.wait()


WORK_ROW = "SELECT xmin::text, lease_owner, due_at FROM flow_work WHERE flow_id = $1"


async def test_a_waiting_flow_holds_no_drive_and_writes_nothing_between_polls(
    start_engine: StartEngine,
) -> None:
    operation = Operation()
    engine = await start_engine(operation.definition(), settings=LONG_LEASE)
    reactor = engine.reactor
    assert reactor is not None
    flow_id = (await engine.service.create("b", "t", "waits", start=True)).flow_id
    await operation.until_polled(3)
    row = await engine.pool.fetchrow(WORK_ROW, flow_id)
    events = await engine.service.store.stream_version(f"flow-{flow_id}")
    commits = await _commits(engine)

    await operation.until_polled(operation.polls + 20)

    assert reactor.busy == 0  # no drive, no slot
    assert flow_id in reactor.parking
    assert reactor.parking.polls >= 20
    # The same row version (xmin): not a write to it in twenty polls, nor an event.
    assert await engine.pool.fetchrow(WORK_ROW, flow_id) == row
    assert await engine.service.store.stream_version(f"flow-{flow_id}") == events
    assert row["lease_owner"] == reactor.owner
    # The row is out of the claimers' way while leased: due when the lease would lapse.
    assert row["due_at"] > datetime.now(UTC)
    # Commits in the database meanwhile: none from the polls (the engine's change checks
    # read; what commits is the notifier, and autovacuum's or statistics' own).
    assert await _commits(engine) - commits < operation.polls / 4

    operation.done = True
    flow = await wait_for_status(engine.service, flow_id, {FlowStatus.FINISHED})
    assert [n.name for n in flow.nodes] == ["wait", "after"]
    assert flow_id not in reactor.parking


async def until(
    engine: Engine, flow_id: str, check: Callable[[FlowState], bool], within: float = 10
) -> FlowState:
    """The flow once ``check`` holds (read every 10 ms)."""
    for _ in range(int(within * 100)):
        flow = await engine.service.get(flow_id)
        if check(flow):
            return flow
        await asyncio.sleep(0.01)
    raise AssertionError(f"flow {flow_id} never got there")


async def _commits(engine: Engine) -> int:
    await engine.pool.execute("SELECT pg_stat_clear_snapshot()")
    return int(
        await engine.pool.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
    )


async def test_an_operator_stop_and_start_of_a_parked_flow_take_effect(
    start_engine: StartEngine,
) -> None:
    operation = Operation()
    engine = await start_engine(operation.definition(), settings=LONG_LEASE)
    flow_id = (await engine.service.create("b", "t", "waits", start=True)).flow_id
    await operation.until_polled(2)

    await engine.service.stop(flow_id, "hold on")
    # The change check hands the flow back to a drive, which reads it again and parks it
    # anew at the new version: polling goes on (Stop lets a running node finish).
    await operation.until_polled(operation.polls + 5)
    operation.done = True
    flow = await until(engine, flow_id, lambda f: f.nodes[0].status is NodeStatus.FINISHED)
    assert flow.status is FlowStatus.STOPPED
    assert flow.nodes[0].result == "done\n"
    assert len(flow.nodes) == 1  # nothing further runs while stopped

    await engine.service.start(flow_id)
    flow = await wait_for_status(engine.service, flow_id, {FlowStatus.FINISHED})
    assert [n.name for n in flow.nodes] == ["wait", "after"]


async def test_shutdown_gives_parked_flows_their_next_poll_time_back(
    start_engine: StartEngine,
) -> None:
    operation = Operation()
    engine = await start_engine(operation.definition(interval=15), settings=LONG_LEASE)
    flow_id = (await engine.service.create("b", "t", "waits", start=True)).flow_id
    assert engine.reactor is not None
    reactor = engine.reactor
    # Parked after its submission: the first poll comes in 15 s.
    await until(engine, flow_id, lambda f: flow_id in reactor.parking)

    await engine.stop()

    async with Engine(engine.database_url, engine.registry, run_reactor=False) as reader:
        row = await reader.pool.fetchrow(WORK_ROW, flow_id)
    assert row["lease_owner"] is None
    left = (row["due_at"] - datetime.now(UTC)).total_seconds()
    assert 10 < left <= 15, left
    assert flow_id not in reactor.parking


async def test_a_parked_flow_stays_with_its_worker_while_it_lives(
    start_engine: StartEngine,
) -> None:
    """Short leases, renewed by the lot: a second worker never takes the flow over."""
    operation = Operation()
    short = ReactorSettings(
        concurrency=8, lease_seconds=0.6, heartbeat_seconds=0.1, poll_interval=0.1
    )
    first = await start_engine(operation.definition(), settings=short)
    flow_id = (await first.service.create("b", "t", "waits", start=True)).flow_id
    await operation.until_polled(2)
    second = await start_engine(operation.definition(), settings=short)

    await asyncio.sleep(2)  # three leases long

    assert first.reactor is not None
    assert second.reactor is not None
    assert flow_id in first.reactor.parking
    assert second.reactor.parking.polls == 0
    assert second.reactor.activity.nodes_run == 0
    operation.done = True
    await wait_for_status(first.service, flow_id, {FlowStatus.FINISHED})


async def test_a_wait_longer_than_a_lease_renewal_rests_in_the_row(
    start_engine: StartEngine,
) -> None:
    """A poll a minute away is not held in memory (its lease would be renewed three times):
    the row is released, due then, for any worker; nothing is held meanwhile."""
    operation = Operation()
    engine = await start_engine(operation.definition(interval=60), settings=LONG_LEASE)
    reactor = engine.reactor
    assert reactor is not None
    flow_id = (await engine.service.create("b", "t", "waits", start=True)).flow_id

    row = await until_row(
        engine, flow_id, lambda r: r["lease_owner"] is None and r["due_at"] > datetime.now(UTC)
    )

    left = (row["due_at"] - datetime.now(UTC)).total_seconds()
    assert 50 < left <= 60, left
    assert flow_id not in reactor.parking
    # The drive that released the row ends just after (under load, a moment after).
    await wait_until(lambda: reactor.busy == 0, within=5)
    assert operation.polls == 0
    # An operator's cancel makes it due at once: claimed and canceled without waiting.
    await engine.service.cancel(flow_id, "not needed")
    flow = await wait_for_status(engine.service, flow_id, {FlowStatus.CANCELED})
    assert flow.nodes[0].status is NodeStatus.CANCELED


async def until_row(
    engine: Engine, flow_id: str, check: Callable[[Any], bool], within: float = 10
) -> Any:
    """The flow's work row once ``check`` holds (read every 10 ms)."""
    for _ in range(int(within * 100)):
        row = await engine.pool.fetchrow(WORK_ROW, flow_id)
        if row is not None and check(row):
            return row
        await asyncio.sleep(0.01)
    raise AssertionError(f"the work row of {flow_id} never got there")
