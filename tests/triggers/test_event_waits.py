"""Callback nodes that wait for a CloudEvent: events of the flow's tenant and type whose data
contains the node's rendered match complete it, in the transaction that records the event, on
a real PostgreSQL with the reactor running (docs/workflows.md, "Callback nodes that wait for an
event")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from pydantic import JsonValue

from flowlog.engine import Engine
from flowlog.eventstore import EventStore, Transaction, create_pool
from flowlog.projections.rebuild import rebuild
from flowlog.triggers.wait_rows import rebuild_event_waits, verify_event_waits
from flowlog.triggers.waits import EventWaits, Q
from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.errors import Code
from flowlog.workflow.event_waits import EventWait
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.service import Completion
from flowlog.workflow.state import FlowState, FlowStatus, NodeStatus
from tests.engines import StartEngine
from tests.workflow.defs import noop
from tests.workflow.helpers import wait_for_status
from tests.workflow.test_waiting import Approvals, types_of, wait_waiting

WAITS = "SELECT node_id, flow_id, tenant_id, event_type, match FROM event_waits ORDER BY node_id"
SINCE = "SELECT since FROM event_waits ORDER BY node_id"


@dataclass(frozen=True, slots=True)
class Event:
    """What a received event carries (the attributes complete_waits reads)."""

    tenant: str
    id: str
    source: str
    type: str
    data: JsonValue
    subject: str | None = None
    time: datetime | None = None


def backup_flow(
    approvals: Approvals | None = None,
    *,
    match: dict[str, Any] | None = None,
    deadline: float | None = None,
    name: str = "verify-backup",
) -> WorkflowDefinition:
    wait = EventWait("backup.verified", match or {"clusterId": "{{context.clusterId}}"})
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("backup", noop, success="verified"),
            "verified": NodeDefinition(
                "verified", approvals or noop, kind="callback", success="record",
                fail="failed", deadline=deadline, event=wait,
            ),
            "record": NodeDefinition("record", noop),
            "failed": NodeDefinition("failed", noop),
        },
    )  # fmt: skip


def event(data: JsonValue, *, type_: str = "backup.verified", tenant: str = "acme",
          id_: str = "e-1") -> Event:  # fmt: skip
    return Event(tenant, id_, "urn:backups", type_, data, "cluster",
                 datetime(2026, 12, 6, 12, 0, tzinfo=UTC))  # fmt: skip


async def deliver(engine: Engine, waits: EventWaits, sent: Event) -> list[str]:
    """As the ingestion does: in the transaction that records the event."""
    store = engine.service.store

    async def work(tx: Any) -> list[str]:
        return await waits.complete_waits(tx, sent.tenant, sent)

    return await store.transact(work)


def waits_of(engine: Engine) -> EventWaits:
    waits = EventWaits(engine.service.registry, engine.service.flows)
    # The shape of the ingestion's hook (app/triggers/ingest.py, OnRecorded), checked by mypy.
    hook: Callable[[Transaction, str, Event], Awaitable[list[str]]] = waits.complete_waits
    assert hook is not None
    return waits


async def waiting_flow(
    engine: Engine, context: dict[str, Any], tenant: str = "acme", name: str = "verify-backup"
) -> FlowState:
    service = engine.service
    created = await service.create("b", "t", name, context=context, tenant_id=tenant, start=True)
    return await wait_waiting(service, created.flow_id)


async def test_a_matching_event_completes_the_node_and_the_flow_runs_to_its_end(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"clusterId": "c-1"})
    node = state.running_node
    assert node is not None
    assert node.event == {"type": "backup.verified", "match": {"clusterId": "c-1"}}
    rows = await pool.fetch(WAITS)
    assert [tuple(r) for r in rows] == [
        (node.node_id, state.flow_id, "acme", "backup.verified", {"clusterId": "c-1"})
    ]
    summary = await pool.fetchval(
        "SELECT summary FROM flow_history($1) WHERE type = 'NodeWaiting'", state.flow_id
    )
    assert summary.startswith("node verified waiting for callback ")
    assert summary.endswith(" or event backup.verified")
    sent = event({"clusterId": "c-1", "sizeBytes": 42})
    assert await deliver(engine, waits, sent) == [state.flow_id]
    assert await pool.fetch(WAITS) == []
    ended = await wait_for_status(engine.service, state.flow_id, {FlowStatus.FINISHED})
    verified = ended.nodes[1]
    assert verified.status is NodeStatus.FINISHED
    recorded = orjson.loads(verified.result)
    assert recorded == {
        "event": {"id": "e-1", "source": "urn:backups", "type": "backup.verified",
                  "subject": "cluster", "time": "2026-12-06T12:00:00+00:00"},
        "data": {"clusterId": "c-1", "sizeBytes": 42},
    }  # fmt: skip
    assert [n.name for n in ended.nodes] == ["backup", "verified", "record"]
    stored = await engine.service.store.read_stream(f"flow-{state.flow_id}")
    received = next(e for e in stored if e.type == "CallbackReceived")
    assert received.data["by"] == "event"
    assert received.data["callback"] is None
    assert received.metadata["reason"] == "event e-1 from urn:backups"
    # The same event again (or a second one) finds nothing to complete.
    assert await deliver(engine, waits, sent) == []


async def test_events_that_do_not_match_complete_nothing(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"clusterId": "c-1"})
    misses = [
        event({"clusterId": "c-1"}, type_="backup.failed"),  # another type
        event({"clusterId": "c-2"}),  # another value
        event({"clusterId": "c-1"}, tenant="other"),  # another tenant's event
        event({"cluster": "c-1"}),  # the key missing
        event({"clusterId": ["c-1"]}),  # a list is not the string
        event("c-1"),  # data that is no object
        event(None),
        event({"clusterId": "C-1"}),  # case matters
        event({"clusterId": "c-1", "bad": "nul\u0000"}),  # data PostgreSQL cannot hold
        event({"clusterId": "c-1", "bad": "\ud800"}),
        event({"clusterId": "c-1", "n": 2**70}),
        event({"clusterId": "c-1", "n": float("nan")}),
        event({"clusterId": "c-1"}, type_="backup.verified\u0000"),
    ]
    for miss in misses:
        assert await deliver(engine, waits, miss) == [], miss
    # The lookup itself keeps to the tenant (the fold checks it again).
    assert await pool.fetch(Q.waits_matching, "other", "backup.verified",
                            {"clusterId": "c-1"}, 10, "") == []  # fmt: skip
    assert len(await pool.fetch(Q.waits_matching, "acme", "backup.verified",
                                {"clusterId": "c-1"}, 10, "")) == 1  # fmt: skip
    await asyncio.sleep(0.2)
    still = await engine.service.get(state.flow_id)
    assert still.running_node is not None
    assert still.running_node.waiting
    assert len(await pool.fetch(WAITS)) == 1
    assert "CallbackReceived" not in await types_of(engine, state.flow_id)


async def test_numbers_match_numbers_and_nested_objects_match_inside(
    start_engine: StartEngine,
) -> None:
    match = {"size": "{{context.size}}", "where": {"region": "{{context.region}}", "zone": 2}}
    engine = await start_engine(backup_flow(match=match))
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"size": 10, "region": "eu"})
    node = state.running_node
    assert node is not None
    assert node.event is not None
    assert node.event["match"] == {"size": 10, "where": {"region": "eu", "zone": 2}}
    as_text = event({"size": "10", "where": {"region": "eu", "zone": 2}})
    assert await deliver(engine, waits, as_text) == []
    assert await deliver(engine, waits, event({"size": 10, "where": {"region": "eu"}})) == []
    assert await deliver(engine, waits, event({"size": 10.0, "extra": True, "where": {
        "region": "eu", "zone": 2, "rack": 7}})) == [state.flow_id]  # fmt: skip
    await wait_for_status(engine.service, state.flow_id, {FlowStatus.FINISHED})


async def test_each_waiting_flow_gets_its_own_event_and_one_event_completes_all_it_matches(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    one = await waiting_flow(engine, {"clusterId": "c-1"})
    two = await waiting_flow(engine, {"clusterId": "c-2"})
    twin = await waiting_flow(engine, {"clusterId": "c-2"})
    theirs = await waiting_flow(engine, {"clusterId": "c-2"}, tenant="other")
    nodes = {s.flow_id: s.running_node.node_id for s in (one, two, twin, theirs)
             if s.running_node is not None}  # fmt: skip
    assert await deliver(engine, waits, event({"clusterId": "c-1"})) == [one.flow_id]
    completed = await deliver(engine, waits, event({"clusterId": "c-2"}, id_="e-2"))
    assert sorted(completed) == sorted([two.flow_id, twin.flow_id])
    for flow in (one, two, twin):
        await wait_for_status(engine.service, flow.flow_id, {FlowStatus.FINISHED})
    # Each node was completed once; the other tenant's flow still waits.
    for flow in (one, two, twin):
        assert (await types_of(engine, flow.flow_id)).count("CallbackReceived") == 1
    assert [r["node_id"] for r in await pool.fetch(WAITS)] == [nodes[theirs.flow_id]]
    assert await deliver(engine, waits, event({"clusterId": "c-2"}, tenant="other")) == [
        theirs.flow_id
    ]


async def test_concurrent_events_for_one_node_complete_it_once(
    start_engine: StartEngine,
) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    states = [await waiting_flow(engine, {"clusterId": f"c-{i}"}) for i in range(5)]
    for state in states:
        sent = [event({"clusterId": state.context["clusterId"], "n": n}, id_=f"e-{n}")
                for n in range(6)]  # fmt: skip
        results = await asyncio.gather(*(deliver(engine, waits, s) for s in sent))
        assert state.running_node is not None
        assert sum(len(r) for r in results) == 1
        assert [r for r in results if r] == [[state.flow_id]]
        ended = await wait_for_status(engine.service, state.flow_id, {FlowStatus.FINISHED})
        assert (await types_of(engine, state.flow_id)).count("CallbackReceived") == 1
        assert ended.nodes[1].status is NodeStatus.FINISHED


async def test_the_deadline_still_fails_it_and_removes_the_wait(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(backup_flow(deadline=0.5))
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"clusterId": "c-1"})
    ended = await wait_for_status(engine.service, state.flow_id, {FlowStatus.ERROR})
    assert ended.nodes[1].error_code == Code.CALLBACK_TIMEOUT
    assert [n.name for n in ended.nodes] == ["backup", "verified", "failed"]
    assert await pool.fetch(WAITS) == []
    assert await deliver(engine, waits, event({"clusterId": "c-1"})) == []


async def test_an_event_after_the_deadline_but_before_the_timeout_is_recorded_completes_nothing(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(backup_flow(deadline=0.3), run_reactor=False)
    service = engine.service
    created = await service.create("b", "t", "verify-backup", context={"clusterId": "c-1"},
                                   tenant_id="acme", start=True)  # fmt: skip
    reactor = await start_engine(backup_flow(deadline=0.3))
    await wait_waiting(reactor.service, created.flow_id)
    await reactor.stop()  # nobody records the timeout
    await asyncio.sleep(0.5)
    assert len(await pool.fetch(WAITS)) == 1
    assert await deliver(engine, waits_of(engine), event({"clusterId": "c-1"})) == []
    assert "CallbackReceived" not in await types_of(engine, created.flow_id)


async def test_cancel_removes_the_wait(start_engine: StartEngine, pool: asyncpg.Pool) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"clusterId": "c-1"})
    await engine.service.cancel(state.flow_id, "no longer needed")
    # CancelRequested alone already takes the wait away: a canceling flow takes no completion.
    assert await pool.fetch(WAITS) == []
    assert await deliver(engine, waits, event({"clusterId": "c-1"})) == []
    ended = await wait_for_status(engine.service, state.flow_id, {FlowStatus.CANCELED})
    assert ended.nodes[1].status is NodeStatus.CANCELED


async def test_a_stopped_flow_keeps_its_wait_and_records_the_completion(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"clusterId": "c-1"})
    await engine.service.stop(state.flow_id)
    assert len(await pool.fetch(WAITS)) == 1
    assert state.running_node is not None
    assert await deliver(engine, waits, event({"clusterId": "c-1"})) == [state.flow_id]
    stopped = await engine.service.get(state.flow_id)
    assert stopped.status is FlowStatus.STOPPED
    assert stopped.nodes[1].status is NodeStatus.FINISHED
    await engine.service.start(state.flow_id)
    await wait_for_status(engine.service, state.flow_id, {FlowStatus.FINISHED})


async def test_the_token_still_works_and_removes_the_wait(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    approvals = Approvals()
    engine = await start_engine(backup_flow(approvals))
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"clusterId": "c-1"})
    token = approvals.tokens[state.flow_id]
    await engine.service.complete_callback(Completion(True, token=token), tenant_id="acme")
    assert await pool.fetch(WAITS) == []
    assert await deliver(engine, waits, event({"clusterId": "c-1"})) == []
    ended = await wait_for_status(engine.service, state.flow_id, {FlowStatus.FINISHED})
    assert (await types_of(engine, state.flow_id)).count("CallbackReceived") == 1
    assert ended.nodes[1].status is NodeStatus.FINISHED


async def test_a_missing_context_value_fails_the_node_through_its_fail_path(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(backup_flow())
    created = await engine.service.create("b", "t", "verify-backup", context={"other": 1},
                                          tenant_id="acme", start=True)  # fmt: skip
    ended = await wait_for_status(engine.service, created.flow_id, {FlowStatus.ERROR})
    failed = ended.nodes[1]
    assert failed.status is NodeStatus.ERROR
    assert failed.error_code == Code.EVENT_MATCH_MISSING == 40155
    assert failed.error_message is not None
    assert "context.clusterId" in failed.error_message
    assert [n.name for n in ended.nodes] == ["backup", "verified", "failed"]
    assert await pool.fetch(WAITS) == []
    # Retried with the value, the node waits anew, its match rendered again.
    await engine.service.retry(created.flow_id, {"clusterId": "c-9"})
    again = await wait_waiting(engine.service, created.flow_id)
    assert again.running_node is not None
    assert again.running_node.event == {"type": "backup.verified", "match": {"clusterId": "c-9"}}
    waits = waits_of(engine)
    assert await deliver(engine, waits, event({"clusterId": "c-9"})) == [again.flow_id]


async def test_lists_in_a_match_are_contained_as_postgresql_contains_them(
    start_engine: StartEngine,
) -> None:
    engine = await start_engine(backup_flow(match={"tags": ["{{context.tag}}", "daily"]}))
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"tag": "eu"})
    assert await deliver(engine, waits, event({"tags": ["eu"]})) == []
    assert await deliver(engine, waits, event({"tags": "eu daily"})) == []
    assert state.running_node is not None
    assert await deliver(engine, waits, event({"tags": ["daily", "x", "eu"]})) == [state.flow_id]


async def test_rebuild_and_verify_reproduce_the_waits(
    start_engine: StartEngine, database_url: str
) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    states = [await waiting_flow(engine, {"clusterId": f"c-{i}"}) for i in range(4)]
    await engine.service.cancel(states[0].flow_id)
    await engine.service.stop(states[1].flow_id)
    await deliver(engine, waits, event({"clusterId": "c-2"}))
    owner = await create_pool(database_url, max_size=2)
    try:
        before = [tuple(r) for r in await owner.fetch(WAITS)]
        times = [
            r["since"] for r in await owner.fetch("SELECT since FROM event_waits ORDER BY node_id")
        ]
        assert [r[1] for r in before] == sorted([states[1].flow_id, states[3].flow_id],
                                                key=lambda f: f)  # fmt: skip
        assert (await verify_event_waits(owner)).differences == []
        # Drift is found, and rebuild repairs it.
        await owner.execute("DELETE FROM event_waits WHERE flow_id = $1", states[1].flow_id)
        await owner.execute(
            "INSERT INTO event_waits VALUES ('x.1', 'x', 'acme', 'backup.verified', '{}', now())"
        )
        check = await verify_event_waits(owner)
        assert len(check.differences) == 2
        await rebuild(EventStore(owner), PROJECTOR, progress=False)
        assert await rebuild_event_waits(owner) == 2
        assert [tuple(r) for r in await owner.fetch(WAITS)] == before
        assert [r["since"] for r in await owner.fetch(SINCE)] == times
        assert (await verify_event_waits(owner)).differences == []
    finally:
        await owner.close()
    # The rebuilt rows serve as the inline ones did.
    assert states[3].running_node is not None
    assert await deliver(engine, waits, event({"clusterId": "c-3"})) == [states[3].flow_id]


@pytest.mark.parametrize("tenant", ["acme", ""])
async def test_an_event_of_the_open_tenant_is_only_the_open_tenants(
    start_engine: StartEngine, tenant: str
) -> None:
    engine = await start_engine(backup_flow())
    waits = waits_of(engine)
    state = await waiting_flow(engine, {"clusterId": "c-1"}, tenant=tenant)
    other = "" if tenant else "acme"
    assert await deliver(engine, waits, event({"clusterId": "c-1"}, tenant=other)) == []
    assert state.running_node is not None
    assert await deliver(engine, waits, event({"clusterId": "c-1"}, tenant=tenant)) == [
        state.flow_id
    ]
