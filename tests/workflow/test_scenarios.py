"""Every semantic of the engine as a scenario, with the reactor running on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import asyncpg
import pytest

from flowlog.engine import Engine
from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import NodeDefinition, NodeKind, RetryPolicy, WorkflowDefinition
from flowlog.workflow.errors import Code, NodeError, WorkflowError
from flowlog.workflow.events import NodeStarted
from flowlog.workflow.executor import Failed, Finished, FlowContext, NodeHandle, PollResult, Running
from flowlog.workflow.reactor_settings import ReactorSettings
from flowlog.workflow.state import FlowStatus, NodeStatus
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.streams import flow_stream
from tests.engines import StartEngine
from tests.helpers import kill_the_slow_append, slow_first_append
from tests.workflow.defs import backup_flow, noop
from tests.workflow.helpers import wait_for_status, wait_until

ENDED = {FlowStatus.FINISHED, FlowStatus.ERROR, FlowStatus.CANCELED}


async def event_types(engine_store: object, flow_id: str) -> list[str]:
    from flowlog.eventstore import EventStore

    assert isinstance(engine_store, EventStore)
    return [e.type for e in await engine_store.read_stream(flow_stream(flow_id))]


async def test_the_seed_backup_flow_runs_to_finished(start_engine: StartEngine) -> None:
    engine = await start_engine(backup_flow())
    service = engine.service
    flow_id = (
        await service.create(
            "cluster-1",
            "cluster",
            "backup",
            caller=Caller("alice", trace_id="t-42"),
            tenant_id="t1",
        )
    ).flow_id
    assert (await service.get(flow_id)).status is FlowStatus.INITIALIZING
    await service.start(flow_id, Caller("alice", trace_id="t-42"))

    flow = await wait_for_status(service, flow_id, ENDED)

    assert flow.status is FlowStatus.FINISHED
    assert [n.name for n in flow.nodes] == ["backup", "updateBackupRecord", "end"]
    assert [n.result for n in flow.nodes] == ["Completed.\n"] * 3
    assert flow.context["traceId"] == "t-42"
    assert flow.context["tenantId"] == "t1"
    stored = await service.store.read_stream(flow_stream(flow_id))
    assert [e.type for e in stored] == [
        "FlowCreated", "FlowStarted", "NodeStarted", "NodeSucceeded", "NodeStarted",
        "NodeSucceeded", "NodeStarted", "NodeSucceeded", "FlowFinished",
    ]  # fmt: skip
    assert stored[1].metadata["actor"] == "alice"
    assert stored[1].metadata["trace_id"] == "t-42"
    assert stored[2].metadata["actor"].startswith("reactor:")
    # Nothing is left to do: the work row is gone.
    assert await engine.pool.fetchval("SELECT count(*) FROM flow_work") == 0


async def test_a_failing_node_runs_the_fail_handler_and_the_flow_ends_in_error(
    start_engine: StartEngine,
) -> None:
    cleaned: list[str] = []

    async def broken(node: NodeHandle, ctx: FlowContext) -> None:
        raise NodeError("disk full", code=5001)

    async def cleanup(node: NodeHandle, ctx: FlowContext) -> str:
        cleaned.append(node.flow_id)
        return "removed partial backup"

    definition = WorkflowDefinition(
        "backup",
        {
            "start": NodeDefinition("backup", broken, success="done", fail="fail"),
            "done": NodeDefinition("updateBackupRecord", noop),
            "fail": NodeDefinition("backupFail", cleanup),
        },
    )
    engine = await start_engine(definition)
    flow_id = (await engine.service.create("c", "cluster", "backup", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.ERROR
    assert (flow.error_code, flow.error_message) == (5001, "disk full")
    assert [(n.name, n.status) for n in flow.nodes] == [
        ("backup", NodeStatus.ERROR),
        ("backupFail", NodeStatus.FINISHED),
    ]
    assert flow.nodes[0].result == "disk full\n"
    assert flow.nodes[1].result == "removed partial backup\n"
    assert cleaned == [flow_id]


def polling_definition(poll: object, deadline: float = 5.0) -> WorkflowDefinition:
    async def submit(node: NodeHandle, ctx: FlowContext) -> str:
        ctx["submitted"] = node.id
        return f"op-{node.flow_id}"

    return WorkflowDefinition(
        "deploy",
        {
            "start": NodeDefinition(
                "deployCluster",
                submit,
                kind=NodeKind.POLLING,
                poll=poll,  # type: ignore[arg-type]
                poll_interval=0.05,
                poll_deadline=deadline,
                success="check",
            ),
            "check": NodeDefinition("check", noop),
        },
    )


async def test_a_polling_node_finishes_after_a_few_polls(start_engine: StartEngine) -> None:
    polls: Counter[str] = Counter()

    async def poll(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
        polls[operation_id] += 1
        return Finished("deployed 3 nodes") if polls[operation_id] >= 3 else Running()

    engine = await start_engine(polling_definition(poll))
    flow_id = (await engine.service.create("c", "cluster", "deploy", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.FINISHED
    assert polls[f"op-{flow_id}"] == 3
    assert flow.nodes[0].operation_id == f"op-{flow_id}"
    assert flow.nodes[0].result == "deployed 3 nodes\n"
    assert flow.context["submitted"] == flow.nodes[0].node_id
    # Polls that found the operation running appended nothing.
    types = await event_types(engine.service.store, flow_id)
    assert types.count("NodeOperationSubmitted") == 1
    assert len(types) == 8


async def test_a_polled_operation_that_fails_fails_the_node(start_engine: StartEngine) -> None:
    async def poll(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
        return Failed("tiup returned 1", code=7007)

    engine = await start_engine(polling_definition(poll))
    flow_id = (await engine.service.create("c", "cluster", "deploy", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.ERROR
    assert (flow.nodes[0].error_code, flow.nodes[0].error_message) == (7007, "tiup returned 1")


async def test_a_polling_node_past_its_deadline_times_out_with_40105(
    start_engine: StartEngine,
) -> None:
    async def poll(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
        return Running()

    engine = await start_engine(polling_definition(poll, deadline=0.3))
    flow_id = (await engine.service.create("c", "cluster", "deploy", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.ERROR
    assert flow.nodes[0].error_code == 40105  # Code.POLLING_TIMEOUT, the seed's code
    assert flow.nodes[0].error_message == "workflow node polling time out"
    # Its result says so, as every other failure's does (the seed records it there too).
    assert flow.nodes[0].result == "workflow node polling time out\n"


async def test_pause_on_failure_stops_the_flow_and_start_retries_the_node(
    start_engine: StartEngine,
) -> None:
    calls: list[int] = []

    async def flaky(node: NodeHandle, ctx: FlowContext) -> None:
        calls.append(node.attempt)
        if node.attempt == 1:
            raise RuntimeError("host unreachable")

    definition = WorkflowDefinition(
        "scale", {"start": NodeDefinition("scaleOut", flaky, fail="pause")}
    )
    engine = await start_engine(definition)
    flow_id = (await engine.service.create("c", "cluster", "scale", start=True)).flow_id

    stopped = await wait_for_status(engine.service, flow_id, {FlowStatus.STOPPED})
    assert stopped.nodes[0].error_message == "RuntimeError: host unreachable"
    assert stopped.nodes[0].error_code == Code.NODE_FAILED

    await engine.service.start(flow_id)
    flow = await wait_for_status(engine.service, flow_id, ENDED)
    assert flow.status is FlowStatus.FINISHED
    assert calls == [1, 2]


async def test_stop_lets_the_running_node_finish_and_nothing_more_runs_until_start(
    start_engine: StartEngine,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    async def slow(node: NodeHandle, ctx: FlowContext) -> None:
        ran.append(node.name)
        entered.set()
        await release.wait()

    async def second(node: NodeHandle, ctx: FlowContext) -> None:
        ran.append(node.name)

    definition = WorkflowDefinition(
        "two",
        {
            "start": NodeDefinition("first", slow, success="next"),
            "next": NodeDefinition("second", second),
        },
    )
    engine = await start_engine(definition)
    flow_id = (await engine.service.create("c", "cluster", "two", start=True)).flow_id
    await asyncio.wait_for(entered.wait(), 10)

    await engine.service.stop(flow_id, reason="maintenance window")
    release.set()
    await wait_until(lambda: ran == ["first"])
    stopped = await wait_for_status(engine.service, flow_id, {FlowStatus.STOPPED})
    await asyncio.sleep(0.5)  # a stopped flow stays put
    stopped = await engine.service.get(flow_id)
    assert stopped.status is FlowStatus.STOPPED
    assert [(n.name, n.status) for n in stopped.nodes] == [("first", NodeStatus.FINISHED)]
    assert ran == ["first"]

    await engine.service.start(flow_id)
    flow = await wait_for_status(engine.service, flow_id, ENDED)
    assert flow.status is FlowStatus.FINISHED
    assert ran == ["first", "second"]


async def test_cancel_interrupts_the_running_executor(start_engine: StartEngine) -> None:
    entered = asyncio.Event()
    interrupted: list[str] = []

    async def endless(node: NodeHandle, ctx: FlowContext) -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            interrupted.append(node.id)
            raise

    engine = await start_engine(
        WorkflowDefinition("long", {"start": NodeDefinition("wait", endless)})
    )
    flow_id = (await engine.service.create("c", "cluster", "long", start=True)).flow_id
    await asyncio.wait_for(entered.wait(), 10)

    state = await engine.service.cancel(flow_id, "user gave up", Caller("bob"))
    assert state.status is FlowStatus.CANCELING
    flow = await wait_for_status(engine.service, flow_id, ENDED, within=5)

    assert flow.status is FlowStatus.CANCELED
    assert flow.nodes[0].status is NodeStatus.CANCELED
    assert flow.reason == "user gave up"
    assert interrupted == [flow.nodes[0].node_id]


async def test_cancel_of_a_stopped_flow_and_refusals_of_an_ended_one(
    start_engine: StartEngine,
) -> None:
    engine = await start_engine(backup_flow())
    service = engine.service
    flow_id = (await service.create("c", "cluster", "backup")).flow_id
    await service.stop(flow_id)

    canceled = await service.cancel(flow_id, "not needed")
    assert canceled.status is FlowStatus.CANCELED
    for command, code in (
        (service.start(flow_id), Code.START_FAILED),
        (service.stop(flow_id), Code.STOP_FAILED),
        (service.cancel(flow_id), Code.CANCEL_FAILED),
    ):
        with pytest.raises(WorkflowError) as caught:
            await command
        assert caught.value.code == code
    assert (await service.get(flow_id)).version == canceled.version
    with pytest.raises(WorkflowError) as missing:
        await service.start("no-such-flow")
    assert missing.value.code == Code.FLOW_NOT_FOUND


async def test_retry_with_a_context_change_continues_from_the_failed_node(
    start_engine: StartEngine,
) -> None:
    async def needs_fix(node: NodeHandle, ctx: FlowContext) -> None:
        if not ctx.get("fixed"):
            raise NodeError("config missing")
        node.record(f"fixed by {ctx['fixed']}")

    definition = WorkflowDefinition(
        "fixable",
        {
            "start": NodeDefinition("prepare", noop, success="apply"),
            "apply": NodeDefinition("apply", needs_fix),
        },
    )
    engine = await start_engine(definition)
    service = engine.service
    flow_id = (await service.create("c", "cluster", "fixable", start=True)).flow_id
    failed = await wait_for_status(service, flow_id, ENDED)
    assert failed.status is FlowStatus.ERROR

    await service.retry(flow_id, {"fixed": "ops"}, caller=Caller("carol", reason="config added"))
    flow = await wait_for_status(service, flow_id, {FlowStatus.FINISHED})

    assert [(n.name, n.attempt, n.status) for n in flow.nodes] == [
        ("prepare", 1, NodeStatus.FINISHED),
        ("apply", 1, NodeStatus.ERROR),
        ("apply", 2, NodeStatus.FINISHED),
    ]
    assert flow.nodes[-1].result == "fixed by ops\n"
    stored = await service.store.read_stream(flow_stream(flow_id))
    retried = [e for e in stored if e.type in {"ContextSet", "FlowRetried"}]
    assert [e.metadata["reason"] for e in retried] == ["config added", "config added"]


async def test_retries_follow_the_policy_with_backoff(start_engine: StartEngine) -> None:
    async def twice_broken(node: NodeHandle, ctx: FlowContext) -> None:
        if node.attempt < 3:
            raise NodeError(f"attempt {node.attempt} failed")

    policy = RetryPolicy(max_attempts=3, initial_interval=0.2, backoff=2.0)
    definition = WorkflowDefinition(
        "retrying", {"start": NodeDefinition("flaky", twice_broken, retry=policy)}
    )
    engine = await start_engine(definition)
    flow_id = (await engine.service.create("c", "cluster", "retrying", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.FINISHED
    assert [n.attempt for n in flow.nodes] == [1, 2, 3]
    first, second, _ = flow.nodes
    for failed, delay in ((first, 0.2), (second, 0.4)):
        assert failed.retry_at is not None
        assert failed.ended_at is not None
        # Decided at the failure, before its commit is stamped (later by the wait for a group
        # commit: tens of ms on a loaded machine); backoff 2 tells 0.2 from 0.4.
        waited = (failed.retry_at - failed.ended_at).total_seconds()
        assert delay / 2 < waited <= delay
    # A retry never starts before it is due.
    assert first.retry_at is not None
    assert second.retry_at is not None
    assert second.started_at >= first.retry_at
    assert flow.nodes[2].started_at >= second.retry_at


async def test_a_sync_node_over_its_timeout_fails_with_40108(start_engine: StartEngine) -> None:
    async def slow(node: NodeHandle, ctx: FlowContext) -> None:
        await asyncio.sleep(5)

    engine = await start_engine(
        WorkflowDefinition("slow", {"start": NodeDefinition("slow", slow, timeout=0.2)})
    )
    flow_id = (await engine.service.create("c", "cluster", "slow", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.ERROR
    assert flow.nodes[0].error_code == Code.NODE_TIMEOUT


async def test_a_worker_that_lost_its_lease_cannot_change_the_flow(
    start_engine: StartEngine,
) -> None:
    first_entered, first_may_finish = asyncio.Event(), asyncio.Event()
    runs: list[tuple[str, int]] = []

    async def stubborn(node: NodeHandle, ctx: FlowContext) -> str:
        runs.append((node.name, node.attempt))
        if node.attempt == 1:
            first_entered.set()
            while not first_may_finish.is_set():  # ignores the interruption, finishes late
                with contextlib.suppress(asyncio.CancelledError):
                    await first_may_finish.wait()
        return f"attempt {node.attempt}"

    definition = WorkflowDefinition("leased", {"start": NodeDefinition("work", stubborn)})
    # One slot, busy with the stubborn node: A cannot claim the flow back itself.
    engine_a = await start_engine(
        definition,
        settings=ReactorSettings(concurrency=1, lease_seconds=2, heartbeat_seconds=0.1,
                                 poll_interval=0.2),
    )  # fmt: skip
    flow_id = (await engine_a.service.create("c", "cluster", "leased", start=True)).flow_id
    await asyncio.wait_for(first_entered.wait(), 10)

    # A's lease expires and is taken (as after a long GC pause or a network partition).
    await engine_a.pool.execute(
        "UPDATE flow_work SET lease_owner = 'ghost', lease_expires_at = now() - interval '1 s'"
    )
    engine_b = await start_engine(definition)
    flow = await wait_for_status(engine_b.service, flow_id, ENDED)
    assert [(n.attempt, n.status) for n in flow.nodes] == [
        (1, NodeStatus.ERROR),
        (2, NodeStatus.FINISHED),
    ]
    assert flow.nodes[0].error_code == Code.NODE_INTERRUPTED

    # A finishes late: its outcome is refused, the flow does not change.
    first_may_finish.set()
    await asyncio.sleep(0.5)
    assert await engine_b.service.get(flow_id) == flow
    assert runs == [("work", 1), ("work", 2)]
    assert flow.nodes[1].result == "attempt 2\n"


async def test_context_set_before_start_reaches_the_executors(start_engine: StartEngine) -> None:
    seen: list[object] = []

    async def read(node: NodeHandle, ctx: FlowContext) -> None:
        seen.append(ctx.get("clusterName"))
        ctx["readBy"] = node.name

    engine = await start_engine(WorkflowDefinition("ctx", {"start": NodeDefinition("r", read)}))
    flow_id = (await engine.service.create("c", "cluster", "ctx", context={"a": 1})).flow_id
    await engine.service.set_context(flow_id, {"clusterName": "prod-1"})
    await engine.service.start(flow_id)

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert seen == ["prod-1"]
    assert dict(flow.context) == {
        "a": 1, "clusterName": "prod-1", "readBy": "r", "traceId": "", "userId": "", "tenantId": "",
    }  # fmt: skip
    with pytest.raises(WorkflowError) as caught:
        await engine.service.set_context(flow_id, {"late": True})
    assert caught.value.code == Code.CONTEXT_FAILED


async def test_definitions_are_recorded_in_the_log_once_per_version(
    start_engine: StartEngine,
) -> None:
    engine = await start_engine(backup_flow())
    await engine.service.register_workflow(backup_flow())  # same content: nothing new
    changed = WorkflowDefinition(
        "backup", {**backup_flow().nodes, "fail": NodeDefinition("backupFail", noop, timeout=3)}
    )
    await engine.service.register_workflow(changed)

    stored = await engine.service.store.read_stream("definition-backup")
    assert [e.data["version"] for e in stored] == [backup_flow().version, changed.version]
    assert stored[0].data["nodeNames"] == ["backup", "updateBackupRecord", "end"]
    assert engine.service.registry.get("backup").version == changed.version


async def test_graceful_shutdown_lets_the_running_node_finish_and_hands_back_the_flow(
    start_engine: StartEngine,
) -> None:
    entered = asyncio.Event()
    ran: list[str] = []

    async def half_second(node: NodeHandle, ctx: FlowContext) -> None:
        ran.append(node.name)
        entered.set()
        await asyncio.sleep(0.5)

    definition = WorkflowDefinition(
        "two",
        {
            "start": NodeDefinition("first", half_second, success="next"),
            "next": NodeDefinition("second", half_second),
        },
    )
    first = await start_engine(definition)
    flow_id = (await first.service.create("c", "cluster", "two", start=True)).flow_id
    await asyncio.wait_for(entered.wait(), 10)

    await first.stop()  # within the 2 s grace: "first" finishes, "second" does not start

    inspector = await start_engine(definition, run_reactor=False)
    after_stop = await inspector.service.get(flow_id)
    assert [(n.name, n.status) for n in after_stop.nodes] == [("first", NodeStatus.FINISHED)]
    lease = await inspector.pool.fetchrow(
        "SELECT lease_owner, due_at <= now() AS due FROM flow_work"
    )
    assert lease is not None
    assert (lease["lease_owner"], lease["due"]) == (None, True)  # handed back, due at once

    second = await start_engine(definition)
    flow = await wait_for_status(second.service, flow_id, ENDED)
    assert flow.status is FlowStatus.FINISHED
    assert ran == ["first", "second"]
    assert all(n.error_code is None for n in flow.nodes)  # nothing was interrupted


async def test_a_definition_limit_caps_its_flows_running_at_once(start_engine: StartEngine) -> None:
    running, peak = 0, 0

    async def counted(node: NodeHandle, ctx: FlowContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    definition = WorkflowDefinition("limited", {"start": NodeDefinition("only", counted)})
    settings = ReactorSettings(
        concurrency=16, lease_seconds=2, heartbeat_seconds=0.1, poll_interval=0.2,
        definition_limits={"limited": 2},
    )  # fmt: skip
    engine = await start_engine(definition, settings=settings)
    flow_ids = [
        (await engine.service.create(f"b{n}", "t", "limited", start=True)).flow_id for n in range(8)
    ]
    for flow_id in flow_ids:
        await wait_for_status(engine.service, flow_id, ENDED)
    assert peak == 2


async def test_a_late_heartbeat_never_makes_a_process_drive_a_flow_twice(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process's own lease expires while its node runs (no heartbeat), and its claim loop
    takes the flow back: the running drive goes on, no second one starts."""
    runs: list[int] = []

    async def slow(node: NodeHandle, ctx: FlowContext) -> None:
        runs.append(node.attempt)
        await asyncio.sleep(2.5)

    async def no_heartbeat(self: object) -> None:
        await asyncio.sleep(3600)

    monkeypatch.setattr("flowlog.workflow.reactor.Reactor._heartbeat_loop", no_heartbeat)
    settings = ReactorSettings(concurrency=4, lease_seconds=1, poll_interval=0.1)
    engine = await start_engine(
        WorkflowDefinition("slow", {"start": NodeDefinition("slow", slow)}), settings=settings
    )
    flow_id = (await engine.service.create("c", "t", "slow", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.FINISHED
    assert runs == [1]
    assert [n.attempt for n in flow.nodes] == [1]


async def test_an_executor_raising_cancelled_error_itself_just_fails(
    start_engine: StartEngine,
) -> None:
    async def odd(node: NodeHandle, ctx: FlowContext) -> None:
        raise asyncio.CancelledError

    engine = await start_engine(WorkflowDefinition("odd", {"start": NodeDefinition("odd", odd)}))
    flow_id = (await engine.service.create("c", "t", "odd", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert flow.status is FlowStatus.ERROR
    assert [n.error_message for n in flow.nodes] == ["the executor raised CancelledError"]


async def test_cancel_of_a_polling_node_between_polls_is_prompt(start_engine: StartEngine) -> None:
    async def submit(node: NodeHandle, ctx: FlowContext) -> str:
        return "op"

    async def never_done(node: NodeHandle, ctx: FlowContext, op: str) -> PollResult:
        return Running()

    definition = WorkflowDefinition(
        "slowpoll",
        {"start": NodeDefinition("wait", submit, kind=NodeKind.POLLING, poll=never_done,
                                 poll_interval=30)},
    )  # fmt: skip
    engine = await start_engine(definition)
    flow_id = (await engine.service.create("c", "t", "slowpoll", start=True)).flow_id
    await wait_until_submitted(engine, flow_id)

    started = asyncio.get_running_loop().time()
    await engine.service.cancel(flow_id, "enough")
    flow = await wait_for_status(engine.service, flow_id, ENDED, within=5)

    assert flow.status is FlowStatus.CANCELED
    assert flow.nodes[0].status is NodeStatus.CANCELED
    assert asyncio.get_running_loop().time() - started < 3


async def wait_until_submitted(engine: Engine, flow_id: str) -> None:
    for _ in range(500):
        flow = await engine.service.get(flow_id)
        if flow.nodes and flow.nodes[0].operation_id:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the operation was never submitted")


async def test_a_lost_reply_after_a_committed_start_does_not_interrupt_the_node(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []

    async def once(node: NodeHandle, ctx: FlowContext) -> None:
        runs.append(node.attempt)

    engine = await start_engine(WorkflowDefinition("once", {"start": NodeDefinition("n", once)}))
    real_append = FlowRepository.append
    lost: list[bool] = []

    async def append_then_lose_the_reply(self: FlowRepository, state: object, events: list[object],
                                         *more: object, **options: bool) -> object:  # fmt: skip
        result = await real_append(self, state, events, *more, **options)  # type: ignore[arg-type]
        if not lost and any(isinstance(e, NodeStarted) for e in events):
            lost.append(True)
            raise ConnectionResetError("the reply was lost")
        return result

    monkeypatch.setattr(FlowRepository, "append", append_then_lose_the_reply)
    flow_id = (await engine.service.create("c", "t", "once", start=True)).flow_id

    flow = await wait_for_status(engine.service, flow_id, ENDED)

    assert lost == [True]
    assert flow.status is FlowStatus.FINISHED
    assert [(n.attempt, n.error_code) for n in flow.nodes] == [(1, None)]
    assert runs == [1]


@pytest.mark.parametrize("fault", ["backend killed during", "reply lost after", "refused"])
async def test_a_live_worker_keeps_its_outcome_when_recording_it_fails(
    start_engine: StartEngine, database_url: str, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """The node ran; recording its outcome hit a transient fault. The worker still holds its
    lease, so it records that outcome when the database answers again: the executor is not
    called a second time, and no interruption (40110) is recorded."""
    runs: list[int] = []

    async def counted(node: NodeHandle, ctx: FlowContext) -> None:
        runs.append(node.attempt)
        ctx["ran"] = len(runs)

    engine = await start_engine(
        WorkflowDefinition(
            "counted",
            {
                "start": NodeDefinition("n", counted, success="two"),
                "two": NodeDefinition("two", noop),
            },
        )
    )
    real_append = FlowRepository.append
    faults: list[str] = []
    killer: list[asyncio.Task[None]] = []
    if fault == "backend killed during":
        await slow_first_append(database_url, "NodeSucceeded")
        faults.append(fault)
        killer.append(asyncio.create_task(kill_the_slow_append(database_url)))

    async def faulty_append(self: FlowRepository, state: object, events: list[object],
                            *more: object, **options: bool) -> object:  # fmt: skip
        outcome = any(type(e).__name__ == "NodeSucceeded" for e in events)
        if outcome and not faults:
            faults.append(fault)
            if fault == "refused":
                raise asyncpg.CannotConnectNowError("the database system is starting up")
            await real_append(self, state, events, *more, **options)  # type: ignore[arg-type]
            raise ConnectionResetError("the reply was lost")
        return await real_append(self, state, events, *more, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(FlowRepository, "append", faulty_append)
    flow_id = (await engine.service.create("c", "t", "counted", start=True)).flow_id

    for _ in range(100):  # the test's own reads may meet a cut connection of the pool once
        with contextlib.suppress(*TRANSIENT_ERRORS):
            flow = await wait_for_status(engine.service, flow_id, ENDED)
            break
        await asyncio.sleep(0.05)

    assert faults == [fault]
    if killer:
        await killer[0]  # it did kill the backend in the middle of the append
    assert flow.status is FlowStatus.FINISHED
    assert runs == [1]  # the executor ran once
    assert [(n.name, n.attempt, n.error_code) for n in flow.nodes] == [
        ("n", 1, None),
        ("two", 1, None),
    ]
    assert flow.context["ran"] == 1


async def test_the_reactor_logs_a_summary_and_each_node_at_debug(
    start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="flowlog.workflow.reactor")
    settings = ReactorSettings(lease_seconds=5, heartbeat_seconds=0.2, summary_seconds=0.3)
    engine = await start_engine(backup_flow(), settings=settings)
    flow_id = (await engine.service.create("c", "t", "backup", start=True)).flow_id
    await wait_for_status(engine.service, flow_id, ENDED)
    await asyncio.sleep(0.5)  # at least one summary after the flow ended

    ran = [r for r in caplog.records if r.getMessage() == "node ran"]
    assert [(r.levelname, r.flow_id, r.outcome) for r in ran][:1] == [  # type: ignore[attr-defined]
        ("DEBUG", flow_id, "success")
    ]
    assert len(ran) == 3
    summaries = [r for r in caplog.records if r.getMessage() == "reactor summary"]
    assert summaries
    assert all(r.levelname == "INFO" for r in summaries)
    assert sum(r.nodes_run for r in summaries) == 3  # type: ignore[attr-defined]
    assert sum(r.flows_finished for r in summaries) == 1  # type: ignore[attr-defined]
    assert sum(r.nodes_interrupted for r in summaries) == 0  # type: ignore[attr-defined]
