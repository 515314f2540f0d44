"""Timer and callback nodes: flows that wait on time or on the outside world, holding no
worker, on a real PostgreSQL with the reactor running."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from flowlog.builtins import definition_from_spec
from flowlog.engine import Engine
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import NodeDefinition, RetryPolicy, WorkflowDefinition
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.reactor import Reactor
from flowlog.workflow.service import Completion, WorkflowService
from flowlog.workflow.state import FlowState, FlowStatus, NodeStatus
from flowlog.workflow.streams import flow_stream
from tests.engines import FAST, StartEngine
from tests.workflow.defs import noop
from tests.workflow.helpers import wait_for_status

ENDED = {FlowStatus.FINISHED, FlowStatus.ERROR, FlowStatus.CANCELED}
WORK_ROWS = "SELECT count(*) FROM flow_work WHERE flow_id = ANY($1::text[])"


async def wait_waiting(service: WorkflowService, flow_id: str, within: float = 20.0) -> FlowState:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        state = await service.get(flow_id)
        if state.running_node is not None and state.running_node.waiting:
            return state
        assert loop.time() < deadline, f"flow never waited: {state}"
        await asyncio.sleep(0.01)


def timer_flow(seconds: float) -> WorkflowDefinition:
    async def cool_down(node: NodeHandle, ctx: FlowContext) -> timedelta:
        return timedelta(seconds=seconds)

    return WorkflowDefinition(
        "cool-down",
        {
            "start": NodeDefinition("prepare", noop, success="wait"),
            "wait": NodeDefinition("wait", cool_down, kind="timer", success="finish"),
            "finish": NodeDefinition("finish", noop),
        },
    )


class Approvals:
    """A callback node's action: keeps the tokens it was handed, as a service would."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}

    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> None:
        assert node.callback_token is not None
        self.tokens[node.flow_id] = node.callback_token
        ctx["asked"] = True


def approval_flow(approvals: Approvals, deadline: float | None = None) -> WorkflowDefinition:
    return WorkflowDefinition(
        "approval",
        {
            "start": NodeDefinition("prepare", noop, success="approve"),
            "approve": NodeDefinition(
                "approve", approvals, kind="callback", success="apply", fail="rejected",
                deadline=deadline,
            ),
            "apply": NodeDefinition("apply", noop),
            "rejected": NodeDefinition("rejected", noop),
        },
    )  # fmt: skip


async def types_of(engine: Engine, flow_id: str) -> list[str]:
    return [e.type for e in await engine.service.store.read_stream(flow_stream(flow_id))]


class CountingReactor(Reactor):
    """A reactor that counts the drives it starts (a claim loop that spins starts hundreds)."""

    drives = 0

    def _spawn(self, *args: Any, **kwargs: Any) -> None:
        self.drives += 1
        super()._spawn(*args, **kwargs)


# -- timers ------------------------------------------------------------------------------------


async def test_a_timer_node_waits_in_its_row_and_moves_on_when_due(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    engine = await start_engine(timer_flow(1.5))
    service = engine.service
    flow_id = (await service.create("b", "t", "cool-down", start=True)).flow_id
    waiting = await wait_waiting(service, flow_id)
    node = waiting.running_node
    assert node is not None
    assert node.wake_at is not None
    assert node.wake_at - node.started_at >= timedelta(seconds=1.4)
    # Nobody holds it: no drive, no lease; the row is due at the wake time.
    await asyncio.sleep(0.3)
    assert engine.reactor is not None
    assert engine.reactor.busy == 0
    row = await pool.fetchrow("SELECT due_at, lease_owner FROM flow_work WHERE flow_id = $1",
                              flow_id)  # fmt: skip
    assert row is not None
    assert row["lease_owner"] is None
    assert abs((row["due_at"] - node.wake_at).total_seconds()) < 0.001

    flow = await wait_for_status(service, flow_id, ENDED)
    assert flow.status is FlowStatus.FINISHED
    assert flow.nodes[1].result.startswith("Waited until ")
    assert flow.nodes[1].ended_at is not None
    assert flow.nodes[1].ended_at >= node.wake_at
    assert await types_of(engine, flow_id) == [
        "FlowCreated", "FlowStarted", "NodeStarted", "NodeSucceeded", "NodeStarted",
        "NodeWaiting", "NodeSucceeded", "NodeStarted", "NodeSucceeded", "FlowFinished",
    ]  # fmt: skip


async def test_a_timer_fires_after_a_restart_in_another_process(
    start_engine: StartEngine,
) -> None:
    first = await start_engine(timer_flow(2.0))
    flow_id = (await first.service.create("b", "t", "cool-down", start=True)).flow_id
    await wait_waiting(first.service, flow_id)
    await first.stop()

    second = await start_engine(timer_flow(2.0))
    flow = await wait_for_status(second.service, flow_id, ENDED)
    assert flow.status is FlowStatus.FINISHED
    actors = [e.metadata["actor"] for e in await second.service.store.read_stream(
        flow_stream(flow_id))]  # fmt: skip
    assert actors[-1] != actors[5]  # woken by the second engine's reactor


async def test_a_json_timer_waits_until_a_time_from_the_context(
    start_engine: StartEngine,
) -> None:
    spec = {
        "name": "not-before",
        "nodes": {
            "start": {"name": "hold", "kind": "timer", "success": "go",
                      "executor": {"type": "until", "contextKey": "notBefore"}},
            "go": {"name": "go", "executor": {"type": "noop"}},
        },
    }  # fmt: skip
    engine = await start_engine(definition_from_spec(spec))
    service = engine.service
    not_before = datetime.now(UTC) + timedelta(seconds=1)
    flow_id = (
        await service.create(
            "b", "t", "not-before", context={"notBefore": not_before.isoformat()}, start=True
        )
    ).flow_id
    waiting = await wait_waiting(service, flow_id)
    assert waiting.running_node is not None
    assert waiting.running_node.wake_at == not_before
    flow = await wait_for_status(service, flow_id, ENDED)
    assert flow.status is FlowStatus.FINISHED
    assert flow.nodes[1].started_at >= not_before

    bad = (
        await service.create("b", "t", "not-before", context={"notBefore": "soon"}, start=True)
    ).flow_id
    failed = await wait_for_status(service, bad, ENDED)
    assert failed.status is FlowStatus.ERROR
    assert failed.nodes[0].error_message is not None
    assert "notBefore" in failed.nodes[0].error_message


# -- callbacks ---------------------------------------------------------------------------------


async def test_a_callback_node_waits_for_its_token_and_moves_on(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    approvals = Approvals()
    engine = await start_engine(approval_flow(approvals))
    service = engine.service
    flow_id = (await service.create("c", "t", "approval", tenant_id="acme", start=True)).flow_id
    waiting = await wait_waiting(service, flow_id)
    token = approvals.tokens[flow_id]
    assert waiting.context["asked"] is True
    assert await service.callback_token(waiting) == token
    # No deadline: nothing is due, no row, no worker.
    assert await pool.fetchval(WORK_ROWS, [flow_id]) == 0
    assert engine.reactor is not None
    assert engine.reactor.busy == 0

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for refused, code in (
        (Completion(True, token=forged), Code.CALLBACK_NOT_FOUND),
        (Completion(True, token="not-a-token"), Code.CALLBACK_NOT_FOUND),
    ):
        with pytest.raises(WorkflowError) as raised:
            await service.complete_callback(refused)
        assert raised.value.code is code
    with pytest.raises(WorkflowError) as foreign:
        await service.complete_callback(Completion(True, token=token), tenant_id="other")
    assert foreign.value.code is Code.CALLBACK_NOT_FOUND

    done = await service.complete_callback(
        Completion(True, token=token, result="approved by bob", changes={"approver": "bob"}),
        Caller("bob", reason="looks fine"),
        tenant_id="acme",
    )
    assert done.nodes[1].status is NodeStatus.FINISHED
    assert done.nodes[1].result == "approved by bob\n"
    assert done.context["approver"] == "bob"
    with pytest.raises(WorkflowError) as again:
        await service.complete_callback(Completion(True, token=token))
    assert again.value.code is Code.CALLBACK_REFUSED

    flow = await wait_for_status(service, flow_id, ENDED)
    assert flow.status is FlowStatus.FINISHED
    assert [n.name for n in flow.nodes] == ["prepare", "approve", "apply"]
    stored = await service.store.read_stream(flow_stream(flow_id))
    received = next(e for e in stored if e.type == "CallbackReceived")
    assert received.data["by"] == "bob"
    assert received.data["reason"] == "looks fine"
    assert received.data["status"] == "success"
    waited = next(e for e in stored if e.type == "NodeWaiting")
    assert received.data["callback"] == waited.data["callback"]
    assert token not in str([e.data for e in stored])  # the log holds the token's id only


async def test_a_callback_fails_by_the_outside_world_or_its_deadline(
    start_engine: StartEngine,
) -> None:
    approvals = Approvals()
    engine = await start_engine(approval_flow(approvals, deadline=1.0))
    service = engine.service
    rejected = (await service.create("c", "t", "approval", start=True)).flow_id
    late = (await service.create("c", "t", "approval", start=True)).flow_id
    await wait_waiting(service, rejected)
    await service.complete_callback(
        Completion(False, flow_id=rejected, node_id=f"{rejected}.2", message="too risky"),
        Caller("carol"),
    )
    flows = {f: await wait_for_status(service, f, ENDED) for f in (rejected, late)}
    for flow_id, code in ((rejected, Code.CALLBACK_FAILED), (late, Code.CALLBACK_TIMEOUT)):
        flow = flows[flow_id]
        assert flow.status is FlowStatus.ERROR
        assert flow.nodes[1].error_code == code
        assert [n.name for n in flow.nodes] == ["prepare", "approve", "rejected"]
    assert flows[rejected].nodes[1].error_message == "too risky"
    # Retry runs the node again: a new execution, a new token; the old one is refused.
    old = approvals.tokens[late]
    await service.retry(late)
    again = await wait_waiting(service, late)
    assert approvals.tokens[late] != old
    with pytest.raises(WorkflowError) as stale:
        await service.complete_callback(Completion(True, token=old))
    assert stale.value.code is Code.CALLBACK_REFUSED
    assert again.running_node is not None
    await service.complete_callback(Completion(True, token=approvals.tokens[late]))
    assert (await wait_for_status(service, late, ENDED)).status is FlowStatus.FINISHED


async def test_stop_and_cancel_work_on_a_waiting_callback(start_engine: StartEngine) -> None:
    approvals = Approvals()
    engine = await start_engine(approval_flow(approvals))
    service = engine.service
    stopped = (await service.create("c", "t", "approval", start=True)).flow_id
    canceled = (await service.create("c", "t", "approval", start=True)).flow_id
    await wait_waiting(service, stopped)
    await wait_waiting(service, canceled)

    await service.stop(stopped, "hold on")
    after = await service.complete_callback(Completion(True, token=approvals.tokens[stopped]))
    assert after.status is FlowStatus.STOPPED  # recorded; nothing further runs until start
    assert after.nodes[-1].status is NodeStatus.FINISHED
    await asyncio.sleep(0.3)
    assert len((await service.get(stopped)).nodes) == 2
    await service.start(stopped)
    assert (await wait_for_status(service, stopped, ENDED)).status is FlowStatus.FINISHED

    await service.cancel(canceled, "not needed")
    flow = await wait_for_status(service, canceled, ENDED)
    assert flow.status is FlowStatus.CANCELED
    assert flow.nodes[-1].status is NodeStatus.CANCELED
    with pytest.raises(WorkflowError) as refused:
        await service.complete_callback(Completion(True, token=approvals.tokens[canceled]))
    assert refused.value.code is Code.CALLBACK_REFUSED


async def test_a_completion_racing_the_deadline_and_a_cancel_has_one_winner(
    start_engine: StartEngine,
) -> None:
    """At the deadline, a completion and a cancel arrive together: the node ends once, by
    whichever was first; the completion is refused when it lost."""
    approvals = Approvals()
    engine = await start_engine(approval_flow(approvals, deadline=1.0))
    service = engine.service
    flow_ids = [(await service.create("c", "t", "approval", start=True)).flow_id
                for _ in range(12)]  # fmt: skip
    states = [await wait_waiting(service, f) for f in flow_ids]

    async def race(index: int, state: FlowState) -> tuple[str, bool, bool]:
        running = state.running_node
        assert running is not None
        assert running.deadline is not None
        # Spread the arrivals around the deadline: before, at, and after it.
        at = running.deadline + timedelta(seconds=(index % 4 - 1) * 0.02)
        await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))

        async def complete() -> Code | None:
            try:
                await service.complete_callback(
                    Completion(True, token=approvals.tokens[state.flow_id])
                )
            except WorkflowError as exc:
                return exc.code
            return None

        async def cancel() -> Code | None:
            try:
                await service.cancel(state.flow_id, "race")
            except WorkflowError as exc:
                return exc.code
            return None

        refusals = await asyncio.gather(complete(), cancel())
        assert refusals[0] in {None, Code.CALLBACK_REFUSED}
        assert refusals[1] in {None, Code.CANCEL_FAILED}
        completed, canceled = refusals[0] is None, refusals[1] is None
        return state.flow_id, completed, canceled

    outcomes = await asyncio.gather(*(race(i, s) for i, s in enumerate(states)))
    for flow_id, completed, _ in outcomes:
        flow = await wait_for_status(service, flow_id, ENDED)
        node = flow.nodes[1]
        stored = await service.store.read_stream(flow_stream(flow_id))
        types = [e.type for e in stored]
        endings = sum(
            1
            for e in stored
            if e.type in {"CallbackReceived", "FlowCanceled", "NodeFailed"}
            and e.data.get("node_id") == node.node_id
        )
        assert endings == 1, types
        if completed:
            assert node.status is NodeStatus.FINISHED
        else:
            assert node.status in {NodeStatus.ERROR, NodeStatus.CANCELED}


@pytest.mark.slow
async def test_a_thousand_waiting_callbacks_hold_no_worker_and_no_row(
    start_engine: StartEngine, pool: asyncpg.Pool
) -> None:
    approvals = Approvals()
    engine = await start_engine(approval_flow(approvals))
    service = engine.service
    flow_ids: list[str] = []
    for start in range(0, 1000, 50):
        created = await asyncio.gather(*(
            service.create(f"c{i}", "t", "approval", start=True) for i in range(start, start + 50)
        ))  # fmt: skip
        flow_ids += [state.flow_id for state in created]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90
    while len(approvals.tokens) < 1000 or (engine.reactor and engine.reactor.busy):
        assert loop.time() < deadline, len(approvals.tokens)
        await asyncio.sleep(0.1)
    events = await pool.fetchval("SELECT count(*) FROM events")
    await asyncio.sleep(2.0)
    assert engine.reactor is not None
    assert engine.reactor.busy == 0
    assert await pool.fetchval(WORK_ROWS, flow_ids) == 0
    assert await pool.fetchval("SELECT count(*) FROM events") == events  # nothing written
    # And they all still move on when called back.
    await asyncio.gather(*(
        service.complete_callback(Completion(True, token=approvals.tokens[f]))
        for f in flow_ids[:20]
    ))  # fmt: skip
    for flow_id in flow_ids[:20]:
        assert (await wait_for_status(service, flow_id, ENDED)).status is FlowStatus.FINISHED


async def test_a_reactor_whose_clock_is_behind_the_databases_waits_without_spinning(
    start_engine: StartEngine,
) -> None:
    """Due times come from the reactor's clock, claims from the database's: three seconds
    behind, the timer's row is claimed early, deferred by the database's clock, and claimed
    again once when due; not released and claimed again in a loop."""
    engine = await start_engine(timer_flow(3.0), run_reactor=False)
    behind = CountingReactor(engine.service.store, engine.registry, settings=FAST,
                             clock=lambda: datetime.now(UTC) - timedelta(seconds=3))  # fmt: skip
    flow_id = (await engine.service.create("b", "t", "cool-down", start=True)).flow_id
    behind.start()
    try:
        flow = await wait_for_status(engine.service, flow_id, ENDED)
    finally:
        await behind.stop()
    assert flow.status is FlowStatus.FINISHED
    assert behind.drives <= 6, behind.drives  # start, wait, the early claim, the wake; not hundreds


async def test_a_completion_after_the_deadline_is_refused_before_the_timeout_is_recorded(
    start_engine: StartEngine,
) -> None:
    approvals = Approvals()
    engine = await start_engine(approval_flow(approvals, deadline=0.5), run_reactor=False)
    service = engine.service
    flow_id = (await service.create("c", "t", "approval", start=True)).flow_id
    # No reactor runs here: drive the flow to its callback with one, then stop it.
    driver = Reactor(service.store, engine.registry, settings=FAST)
    driver.start()
    try:
        await wait_waiting(service, flow_id)
    finally:
        await driver.stop()
    await asyncio.sleep(0.7)
    with pytest.raises(WorkflowError) as late:
        await service.complete_callback(Completion(True, token=approvals.tokens[flow_id]))
    assert late.value.code is Code.CALLBACK_REFUSED
    assert "deadline" in late.value.message
    running = (await service.get(flow_id)).running_node
    assert running is not None
    assert running.waiting  # nothing was recorded


async def test_a_retry_wait_claimed_early_is_deferred_not_spun(start_engine: StartEngine) -> None:
    """As a waiting node's: a flow waiting to retry, claimed by a database clock ahead of the
    reactor's, is deferred by the database's clock, not released and claimed again."""
    failures = 0

    async def flaky(node: NodeHandle, ctx: FlowContext) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise RuntimeError("once")

    retrying = WorkflowDefinition("retrying-once", {"start": NodeDefinition(
        "flaky", flaky, retry=RetryPolicy(max_attempts=2, initial_interval=3.0))})  # fmt: skip
    engine = await start_engine(retrying, run_reactor=False)
    behind = CountingReactor(engine.service.store, engine.registry, settings=FAST,
                             clock=lambda: datetime.now(UTC) - timedelta(seconds=3))  # fmt: skip
    flow_id = (await engine.service.create("b", "t", "retrying-once", start=True)).flow_id
    behind.start()
    try:
        flow = await wait_for_status(engine.service, flow_id, ENDED)
    finally:
        await behind.stop()
    assert flow.status is FlowStatus.FINISHED
    assert [n.attempt for n in flow.nodes] == [1, 2]
    assert behind.drives <= 6, behind.drives
