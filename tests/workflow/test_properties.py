"""Property tests of the pure core: random command sequences on the seed-like definitions.

Whatever operators and workers do, in whatever order, a flow never reaches an invalid state,
refusals change nothing, and folding the produced history gives the state that produced it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from flowlog.eventstore import EventStore, WrongExpectedVersion
from flowlog.workflow.commands import (
    Advance,
    CancelFlow,
    Command,
    CompleteCallback,
    CreateFlow,
    Interrupt,
    RecordCanceled,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RecordWaiting,
    RetryFlow,
    SetContext,
    StartFlow,
    StopFlow,
    Wake,
)
from flowlog.workflow.decide import decide, decide_and_advance
from flowlog.workflow.definition import NodeDefinition, NodeKind, RetryPolicy, WorkflowDefinition
from flowlog.workflow.errors import Code, StaleOutcome, WorkflowError
from flowlog.workflow.events import (
    FlowCanceled,
    FlowEvent,
    FlowMigrated,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    decode,
    encode,
)
from flowlog.workflow.fold import evolve, fold
from flowlog.workflow.state import TERMINAL, FlowState, FlowStatus, NodeStatus
from flowlog.workflow.store import FlowRepository
from tests.workflow.defs import backup_flow, noop, pausing_flow, polling_flow
from tests.workflow.harness import REACTOR, Memory, created

RETRYING = WorkflowDefinition(
    "retrying",
    {
        "start": NodeDefinition(
            "a", noop, success="b", fail="cleanup", retry=RetryPolicy(3, 0.5, 2.0, 4.0)
        ),
        "b": NodeDefinition("b", noop, fail="pause"),
        "cleanup": NodeDefinition("cleanup", noop),
    },
)
WAITING = WorkflowDefinition(
    "waiting",
    {
        "start": NodeDefinition("quiet", noop, kind=NodeKind.TIMER, success="approve"),
        "approve": NodeDefinition(
            "approve", noop, kind=NodeKind.CALLBACK, deadline=3.0, success="apply",
            fail="rejected", retry=RetryPolicy(2, 0.5, 2.0, 4.0),
        ),
        "apply": NodeDefinition("apply", noop),
        "rejected": NodeDefinition("rejected", noop),
    },
)  # fmt: skip
"""Timer and callback nodes: waiting, woken, completed, failed by the outside world or by
the deadline, retried (the SQL fold is held equal to Python's on these too)."""
DEFINITIONS = [backup_flow(), pausing_flow(), polling_flow(), RETRYING, WAITING]

ACTIONS = st.one_of(
    st.just("start"),
    st.just("stop"),
    st.just("cancel"),
    st.just("advance"),
    st.just("succeed"),
    st.just("submit"),
    st.just("interrupt"),
    st.just("canceled"),
    st.just("stale"),
    st.tuples(st.just("fail"), st.sampled_from([1, 40105, 40108])),
    st.tuples(st.just("context"), st.sampled_from(["a", "b"]), st.integers(0, 3)),
    st.tuples(st.just("retry"), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([0.1, 0.5, 1.0, 5.0])),
    st.just("wait"),
    st.just("wake"),
    st.tuples(st.just("complete"), st.booleans()),
    st.just("migrate"),
)
"""``migrate`` moves the flow to another version, every node key renamed, and back again (two
appends): the folds (Python's and SQL's) rename what they hold, and undo it."""


def there_and_back(state: FlowState, definition: WorkflowDefinition) -> list[FlowEvent]:
    """A migration to another version with every key renamed, and one back; [] for a flow
    that a migration would not move (ended, or archived)."""
    if state.terminal or state.archived:
        return []
    renames = {key: f"{key}-v2" for key in definition.nodes}
    back = {new: old for old, new in renames.items()}
    version = state.definition_version
    return [
        FlowMigrated(from_version=version, to_version="other-version", node_map=renames),
        FlowMigrated(from_version="other-version", to_version=version, node_map=back),
    ]


def command_for(memory: Memory, action: object) -> Command | None:
    running = memory.flow.running_node
    node_id = running.node_id if running else "f1.999"
    match action:
        case "start":
            return StartFlow()
        case "stop":
            return StopFlow("because")
        case "cancel":
            return CancelFlow("because")
        case "advance":
            return Advance()
        case "succeed":
            return RecordSuccess(node_id, result="ok\n", changes={"done": node_id})
        case "submit":
            return RecordSubmitted(node_id, f"op-{node_id}")
        case "interrupt":
            return Interrupt(node_id)
        case "canceled":
            return RecordCanceled(node_id)
        case "stale":
            return RecordSuccess("f1.0")
        case ("fail", code):
            return RecordFailure(node_id, int(code), "boom")  # type: ignore[call-overload]
        case ("context", key, value):
            return SetContext({str(key): value})
        case ("retry", with_changes):
            return RetryFlow({"fixed": True} if with_changes else {})
        case ("tick", seconds):
            memory.tick(float(seconds))  # type: ignore[arg-type]
            return None
        case "wait":
            return RecordWaiting(node_id, memory.now + timedelta(seconds=1), f"tok-{node_id}")
        case "wake":
            return Wake(node_id)
        case "migrate":
            return None  # not a command: see there_and_back
        case ("complete", succeeded):
            return CompleteCallback(node_id, bool(succeeded), by="tester", reason="because",
                                    message="no", changes={"answer": bool(succeeded)})  # fmt: skip
    raise AssertionError(action)


def check_invariants(memory: Memory) -> None:
    flow = memory.flow
    assert flow.status in set(FlowStatus)
    assert flow.version == len(memory.history)
    processing = [n for n in flow.nodes if n.status is NodeStatus.PROCESSING]
    assert len(processing) <= 1
    if processing:
        assert processing[0] is flow.nodes[-1]
        assert flow.status not in TERMINAL
    assert [n.sequence for n in flow.nodes] == list(range(1, len(flow.nodes) + 1))
    assert len({n.node_id for n in flow.nodes}) == len(flow.nodes)
    if flow.status is FlowStatus.FINISHED:
        assert not flow.failed_path
        last_runs = {n.key: n for n in flow.nodes}  # the latest execution of each node
        assert all(n.status is NodeStatus.FINISHED for n in last_runs.values())
    if flow.status is FlowStatus.ERROR:
        assert flow.failed_path
        assert flow.error_code is not None
    for node in flow.nodes:
        assert node.attempt >= 1
        assert 1 <= node.series <= node.attempt
        if node.status is not NodeStatus.PROCESSING:
            assert node.ended_at is not None
    # No double transition: every node execution starts once and ends at most once.
    starts = Counter(e.node_id for e, _ in memory.history if isinstance(e, NodeStarted))
    ends = Counter(
        e.node_id
        for e, _ in memory.history
        if isinstance(e, NodeSucceeded | NodeFailed)
        or (isinstance(e, FlowCanceled) and e.node_id is not None)
    )
    assert set(starts.values()) <= {1}
    assert set(ends.values()) <= {1}
    assert set(ends) <= set(starts)


@settings(max_examples=300, deadline=None)
@given(
    definition=st.sampled_from(DEFINITIONS),
    actions=st.lists(ACTIONS, min_size=1, max_size=60),
)
def test_random_command_sequences_keep_the_flow_valid_and_foldable(
    definition: WorkflowDefinition, actions: list[object]
) -> None:
    memory = created(definition, a=0)
    for action in actions:
        if action == "migrate":
            before = memory.flow
            for event in there_and_back(before, definition):
                memory.state = evolve(memory.state, event, memory.now)
                memory.history.append((event, memory.now))
            after = memory.flow
            # There and back again: as it was, but for the versions that record the moves.
            nodes = tuple(replace(n, version=m.version)
                          for n, m in zip(after.nodes, before.nodes, strict=True))  # fmt: skip
            assert replace(after, version=before.version, updated_at=before.updated_at,
                           nodes=nodes) == before  # fmt: skip
            continue
        command = command_for(memory, action)
        if command is None:
            continue
        before, history_length = memory.flow, len(memory.history)
        was_terminal = memory.flow.terminal
        try:
            events = memory.run(command)
        except (WorkflowError, StaleOutcome):
            assert memory.flow == before
            assert len(memory.history) == history_length
            continue
        if was_terminal and not (
            isinstance(command, RetryFlow) and before.status is FlowStatus.ERROR
        ):
            assert events == []  # an ended flow only refuses or ignores, but Retry of Error
        check_invariants(memory)
        assert memory.refolded() == memory.flow
    # As the log holds them (JSON, decoded again): the fold of the stored history is the same.
    stored = [(decode(*encode(event)), at) for event, at in memory.history]
    assert fold(stored) == memory.flow


@settings(max_examples=100, deadline=None)
@given(
    definition=st.sampled_from(DEFINITIONS),
    failures=st.lists(st.booleans(), min_size=1, max_size=30),
)
def test_a_diligent_reactor_always_brings_a_started_flow_to_an_end(
    definition: WorkflowDefinition, failures: list[bool]
) -> None:
    """Outcomes only (no operator in the way): the flow ends Finished, Error, or Stopped on a
    pause, never stuck with nothing to do."""
    memory = created(definition)
    memory.run(StartFlow())
    memory.run(Advance())
    outcomes = iter(failures)
    for _ in range(200):
        flow = memory.flow
        if flow.terminal or flow.status is FlowStatus.STOPPED:
            break
        running = flow.running_node
        if running is None:
            memory.tick(10)  # past any retry delay
            assert memory.run(Advance()), f"stuck: {flow}"
            continue
        if running.kind == "polling" and running.operation_id is None:
            memory.run(RecordSubmitted(running.node_id, "op"))
        elif running.kind in ("timer", "callback") and not running.waiting:
            memory.run(RecordWaiting(running.node_id, memory.now, "tok"))
        elif running.kind == "timer":
            memory.run(Wake(running.node_id))
        elif running.kind == "callback":
            memory.run(CompleteCallback(running.node_id, not next(outcomes, False), by="t"))
        elif next(outcomes, False):
            memory.run(RecordFailure(running.node_id, 1, "boom"))
        else:
            memory.run(RecordSuccess(running.node_id))
        check_invariants(memory)
    final = memory.flow
    assert final.terminal or final.status is FlowStatus.STOPPED
    assert final.status is not FlowStatus.CANCELED
    if final.status is FlowStatus.ERROR:
        assert final.error_code in {1, Code.CALLBACK_FAILED}
    assert memory.refolded() == final
    assert Code.NODE_FAILED  # the default code exists for executors that raise


async def write_random_history(
    store: EventStore, definition: WorkflowDefinition, actions: list[object], flow_id: str
) -> FlowState:
    """Appends the history that ``actions`` drive a new flow through, through the repository
    (as the service and the reactor do); returns the final state. After each action the flow
    is advanced when it can be, as a diligent reactor would: without that, random actions
    rarely get a node to run, and the histories would hardly exercise the fold."""
    flows = FlowRepository(store)
    memory = Memory(definition)  # only to turn actions into commands
    create = CreateFlow(flow_id, "biz", "test", "t1", {"a": 0})
    state = await flows.append(None, decide(None, create, definition, flows.clock()))
    memory.state = state
    for action in actions:
        if action == "migrate":
            for event in there_and_back(state, definition):
                state = await flows.append(state, [event])
            memory.state = state
            continue
        for command in (command_for(memory, action), Advance()):
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
    return state
