"""The pure core: decisions and the fold, scenario by scenario, without a database."""

from __future__ import annotations

import pytest

from flowlog.workflow.commands import (
    Advance,
    CancelFlow,
    CreateFlow,
    Interrupt,
    RecordCanceled,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RetryFlow,
    SetContext,
    StartFlow,
    StopFlow,
)
from flowlog.workflow.errors import Code, StaleOutcome, WorkflowError
from flowlog.workflow.events import ContextSet, FlowCreated, FlowStarted, NodeStarted
from flowlog.workflow.fold import FoldError, evolve
from flowlog.workflow.state import FlowStatus, NodeStatus
from tests.workflow.defs import backup_flow, pausing_flow, polling_flow
from tests.workflow.harness import T0, Memory, created


def running_id(memory: Memory) -> str:
    node = memory.flow.running_node
    assert node is not None
    return node.node_id


def retry_delay(memory: Memory) -> float:
    last = memory.flow.last_node
    assert last is not None
    assert last.will_retry
    assert last.retry_at is not None
    return (last.retry_at - memory.now).total_seconds()


def test_a_created_flow_waits_in_initializing_with_its_context() -> None:
    memory = created(backup_flow(), traceId="t-1")
    flow = memory.flow
    assert flow.status is FlowStatus.INITIALIZING
    assert dict(flow.context) == {"traceId": "t-1"}
    assert (flow.version, flow.biz_id, flow.tenant_id) == (1, "biz-1", "tenant-1")
    assert flow.definition_version == backup_flow().version
    assert memory.run(Advance()) == []  # nothing runs before Start


def test_the_backup_flow_runs_its_success_path_and_finishes() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    for _ in range(3):
        memory.run(RecordSuccess(running_id(memory), result="ok\n"))

    flow = memory.flow
    assert flow.status is FlowStatus.FINISHED
    assert [n.name for n in flow.nodes] == ["backup", "updateBackupRecord", "end"]
    assert all(n.status is NodeStatus.FINISHED for n in flow.nodes)
    assert [n.node_id for n in flow.nodes] == ["f1.1", "f1.2", "f1.3"]
    assert memory.types() == [
        "FlowCreated", "FlowStarted", "NodeStarted", "NodeSucceeded", "NodeStarted",
        "NodeSucceeded", "NodeStarted", "NodeSucceeded", "FlowFinished",
    ]  # fmt: skip
    assert memory.refolded() == flow


def test_a_failure_runs_the_handler_and_ends_in_error_with_the_first_failure() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    memory.run(RecordSuccess(running_id(memory)))
    memory.run(RecordFailure(running_id(memory), 7, "disk full"))
    assert memory.flow.running_node is not None
    assert memory.flow.running_node.name == "backupFail"
    memory.run(RecordSuccess(running_id(memory), result="cleaned\n"))

    flow = memory.flow
    assert flow.status is FlowStatus.ERROR
    assert (flow.error_code, flow.error_message) == (7, "disk full")
    assert flow.failed_key == "backupDone"
    assert [n.status for n in flow.nodes] == [
        NodeStatus.FINISHED, NodeStatus.ERROR, NodeStatus.FINISHED,
    ]  # fmt: skip


def test_retries_follow_the_policy_with_backoff_then_pause() -> None:
    memory = created(pausing_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    memory.run(RecordSuccess(running_id(memory)))
    memory.run(RecordFailure(running_id(memory), 1, "flaky"))  # attempt 1 of 3
    assert retry_delay(memory) == 1.0
    assert memory.run(Advance()) == []  # not due yet
    memory.tick(1)
    memory.run(Advance())
    assert memory.flow.running_node is not None
    assert memory.flow.running_node.attempt == 2
    memory.run(RecordFailure(running_id(memory), 1, "flaky"))
    assert retry_delay(memory) == 2.0  # backoff 2
    memory.tick(2)
    memory.run(Advance())
    memory.run(RecordFailure(running_id(memory), 1, "still flaky"))  # attempt 3: budget spent

    flow = memory.flow
    assert flow.status is FlowStatus.STOPPED
    assert [n.attempt for n in flow.nodes[1:]] == [1, 2, 3]
    # Start retries the failed node as a new attempt, with a fresh retry budget.
    memory.run(StartFlow())
    memory.run(Advance())
    assert memory.flow.running_node is not None
    assert (memory.flow.running_node.attempt, memory.flow.running_node.series) == (4, 1)
    memory.run(RecordSuccess(running_id(memory)))
    assert memory.flow.status is FlowStatus.FINISHED


def test_stop_lets_the_running_node_finish_and_start_resumes() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    memory.run(StopFlow("maintenance"))
    memory.run(RecordSuccess(running_id(memory)))

    flow = memory.flow
    assert flow.status is FlowStatus.STOPPED
    assert flow.running_node is None  # the outcome was recorded, nothing further started
    assert flow.cursor == "backupDone"
    assert memory.run(Advance()) == []
    memory.run(StartFlow())
    memory.run(Advance())
    assert memory.flow.running_node is not None
    assert memory.flow.running_node.name == "updateBackupRecord"


def test_cancel_while_a_node_runs_is_requested_then_completed_by_the_reactor() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    node_id = running_id(memory)
    memory.run(CancelFlow("no longer needed"))
    assert memory.flow.status is FlowStatus.CANCELING
    memory.run(RecordCanceled(node_id))

    flow = memory.flow
    assert flow.status is FlowStatus.CANCELED
    assert flow.nodes[-1].status is NodeStatus.CANCELED
    assert flow.reason == "no longer needed"


def test_cancel_of_a_stopped_flow_completes_at_once() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(StopFlow())
    events = memory.run(CancelFlow("changed plans"))
    assert [type(e).__name__ for e in events] == ["CancelRequested", "FlowCanceled"]
    assert memory.flow.status is FlowStatus.CANCELED


@pytest.mark.parametrize(
    ("command", "code"),
    [(StartFlow(), Code.START_FAILED), (StopFlow(), Code.STOP_FAILED),
     (CancelFlow(), Code.CANCEL_FAILED), (SetContext({"k": 1}), Code.CONTEXT_FAILED),
     (RetryFlow(), Code.RETRY_FAILED)],
)  # fmt: skip
def test_commands_on_a_finished_flow_are_refused_with_the_seed_codes(
    command: StartFlow, code: Code
) -> None:
    memory = created(backup_flow())
    memory.run(CancelFlow())
    with pytest.raises(WorkflowError) as caught:
        memory.run(command)
    assert caught.value.code == code


def test_retry_of_an_errored_flow_reruns_the_failed_node_with_context_changes() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    memory.run(RecordFailure(running_id(memory), 9, "no space"))
    memory.run(RecordSuccess(running_id(memory)))  # the handler
    assert memory.flow.status is FlowStatus.ERROR

    events = memory.run(RetryFlow({"disk": "big"}))
    assert [type(e).__name__ for e in events] == ["ContextSet", "FlowRetried"]
    memory.run(Advance())
    flow = memory.flow
    assert flow.status is FlowStatus.PROCESSING
    assert flow.running_node is not None
    assert (flow.running_node.key, flow.running_node.attempt) == ("start", 2)
    assert flow.context["disk"] == "big"
    assert (flow.error_code, flow.failed_path) == (None, False)


def test_a_polling_node_submits_then_finishes_by_its_poll() -> None:
    memory = created(polling_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    node_id = running_id(memory)
    memory.run(RecordSubmitted(node_id, "op-9"))
    node = memory.flow.running_node
    assert node is not None
    assert node.operation_id == "op-9"
    assert node.next_poll_at is not None
    assert node.poll_deadline is not None
    assert (node.next_poll_at - memory.now).total_seconds() == pytest.approx(0.05)
    memory.run(RecordSuccess(node_id, result="done\n"))
    assert memory.flow.running_node is not None
    assert memory.flow.running_node.name == "check"


def test_an_interrupted_node_runs_again_as_a_new_attempt() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    memory.run(Interrupt(running_id(memory)))

    flow = memory.flow
    assert flow.nodes[0].error_code == Code.NODE_INTERRUPTED
    assert flow.running_node is not None
    assert (flow.running_node.key, flow.running_node.attempt) == ("start", 2)


def test_stale_outcomes_are_refused_and_change_nothing() -> None:
    memory = created(backup_flow())
    memory.run(StartFlow())
    memory.run(Advance())
    old = running_id(memory)
    memory.run(Interrupt(old))  # another worker took over: attempt 2 runs now
    before = memory.flow
    for stale in (RecordSuccess(old), RecordFailure(old, 1, "x"), RecordSubmitted(old, "op"),
                  Interrupt(old), RecordCanceled(old)):  # fmt: skip
        with pytest.raises(StaleOutcome):
            memory.run(stale)
    assert memory.flow == before


def test_create_twice_and_bad_context_are_refused() -> None:
    memory = created(backup_flow())
    with pytest.raises(WorkflowError) as caught:
        memory.run(CreateFlow("f1", "b", "t"))
    assert caught.value.code == Code.CREATE_FAILED
    with pytest.raises(WorkflowError, match="not JSON") as bad:
        memory.run(SetContext({"when": object()}))
    assert bad.value.code == Code.CONTEXT_FAILED
    assert memory.flow.version == 1
    # What the log cannot store is refused as the REST API refuses it, for Python callers too.
    for value, problem in [("a\x00b", "context['k']: NUL character"),
                           ({"x": ["\ud800"]}, "context['k']['x'][0]: lone surrogate"),
                           (2**64, "context['k']: integer beyond 64 bits"),
                           (float("nan"), "context['k']: NaN or Infinity")]:  # fmt: skip
        with pytest.raises(WorkflowError) as unstorable:
            memory.run(SetContext({"k": value}))
        assert (unstorable.value.code, unstorable.value.message) == (Code.CONTEXT_FAILED, problem)
    assert memory.flow.version == 1


def test_context_changes_and_removals_fold_in_order() -> None:
    memory = created(backup_flow(), a=1, b=2)
    memory.run(SetContext({"c": [3]}, removed=["a"]))
    memory.run(StartFlow())
    memory.run(Advance())
    memory.run(RecordSuccess(running_id(memory), changes={"d": {"x": 1}}, removed=["b"]))
    assert dict(memory.flow.context) == {"c": [3], "d": {"x": 1}}


def test_a_history_must_start_with_creation_and_nodes_must_match() -> None:
    with pytest.raises(FoldError):
        evolve(None, ContextSet(changes={}), T0)
    state = evolve(None, FlowCreated(flow_id="f", name="n", biz_id="", biz_type="",
                                     definition_version="v"), T0)  # fmt: skip
    with pytest.raises(FoldError):
        evolve(state, FlowCreated(flow_id="f", name="n", biz_id="", biz_type="",
                                  definition_version="v"), T0)  # fmt: skip
    started = evolve(state, NodeStarted(node_id="x", key="start", name="a", kind="sync",
                                        attempt=1), T0)  # fmt: skip
    with pytest.raises(FoldError, match="while"):
        evolve(started, NodeStarted(node_id="y", key="start", name="a", kind="sync",
                                    attempt=2), T0)  # fmt: skip


def test_stored_events_of_an_older_schema_are_upcast_before_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowlog.workflow import events

    # Suppose NodeStarted went to schema 2, which renamed "attempt" from "try".
    monkeypatch.setattr(events.NodeStarted, "schema_version", 2)
    monkeypatch.setitem(
        events.UPCASTERS,
        ("NodeStarted", 1),
        lambda data: {**{k: v for k, v in data.items() if k != "try"}, "attempt": data["try"]},
    )
    stored_v1 = {"node_id": "f.1", "key": "start", "name": "a", "kind": "sync", "try": 3}
    decoded = events.decode("NodeStarted", stored_v1, {"schema_version": 1})
    assert isinstance(decoded, NodeStarted)
    assert decoded.attempt == 3
    with pytest.raises(ValueError, match="no upcaster"):
        events.decode("FlowStarted", {}, {"schema_version": 0})
    with pytest.raises(ValueError, match="unknown flow event"):
        events.decode("Bogus", {}, {})
    # Data that names its own type is read as the stored type says, as before.
    assert isinstance(events.decode("FlowStarted", {"type": "FlowStopped"}, {}), FlowStarted)


def _interrupted_flow(max_interruptions: int, fail: str = "fail") -> Memory:
    from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
    from tests.workflow.defs import noop

    nodes = {
        "start": NodeDefinition(
            "crash", noop, success="", fail=fail, max_interruptions=max_interruptions
        )
    }
    if fail == "fail":
        nodes["fail"] = NodeDefinition("cleanup", noop)
    definition = WorkflowDefinition("crashy", nodes)
    memory = created(definition)
    memory.run(StartFlow())
    memory.run(Advance())
    return memory


def test_a_node_whose_worker_keeps_dying_gives_up_after_max_interruptions() -> None:
    memory = _interrupted_flow(max_interruptions=2)
    for attempt in (1, 2):  # lost twice: it runs again each time
        memory.run(Interrupt(running_id(memory)))
        running = memory.flow.running_node
        assert running is not None
        assert (running.key, running.attempt) == ("start", attempt + 1)
    memory.run(Interrupt(running_id(memory)))  # the third time in a row: no more
    flow = memory.flow
    crash = [n for n in flow.nodes if n.key == "start"]
    assert [n.error_code for n in crash] == [Code.NODE_INTERRUPTED] * 3
    assert not crash[-1].will_retry
    assert "lost 3 times in a row" in (crash[-1].error_message or "")
    assert flow.running_node is not None
    assert flow.running_node.key == "fail"  # the fail path, as any failure
    assert (flow.error_code, flow.failed_key) == (Code.NODE_INTERRUPTED, "start")
    memory.run(RecordSuccess(running_id(memory)))
    assert memory.flow.status is FlowStatus.ERROR
    assert memory.refolded() == memory.flow


def test_interruptions_count_in_a_row_only_and_zero_means_never_again() -> None:
    memory = _interrupted_flow(max_interruptions=1)
    memory.run(Interrupt(running_id(memory)))  # lost once: runs again
    memory.run(RecordFailure(running_id(memory), 7001, "its own failure"))  # ends the run
    assert memory.flow.status is FlowStatus.PROCESSING
    assert memory.flow.running_node is not None
    assert memory.flow.running_node.key == "fail"

    never = _interrupted_flow(max_interruptions=0, fail="pause")
    never.run(Interrupt(running_id(never)))
    assert never.flow.status is FlowStatus.STOPPED  # its fail transition: pause
    assert never.flow.nodes[-1].error_code == Code.NODE_INTERRUPTED


def test_the_seeds_pause_spelling_is_the_same_pause() -> None:
    from flowlog.workflow.definition import PAUSE, NodeDefinition, WorkflowDefinition
    from flowlog.workflow.errors import InvalidDefinition
    from tests.workflow.defs import noop

    upper = NodeDefinition("a", noop, fail="PAUSE")
    assert upper.fail == PAUSE
    lower = WorkflowDefinition("p", {"start": NodeDefinition("a", noop, fail="pause")})
    assert WorkflowDefinition("p", {"start": upper}).version == lower.version
    with pytest.raises(InvalidDefinition, match="'PAUSE' is reserved"):
        WorkflowDefinition("p", {"start": NodeDefinition("a", noop, success="PAUSE"),
                                 "PAUSE": NodeDefinition("b", noop)})  # fmt: skip


def test_a_default_max_interruptions_leaves_the_version_as_it_was() -> None:
    from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
    from tests.workflow.defs import noop

    plain = WorkflowDefinition("v", {"start": NodeDefinition("a", noop)})
    assert "maxInterruptions" not in plain.describe()["nodes"]["start"]
    three = WorkflowDefinition("v", {"start": NodeDefinition("a", noop, max_interruptions=3)})
    assert three.version == plain.version
    five = WorkflowDefinition("v", {"start": NodeDefinition("a", noop, max_interruptions=5)})
    assert five.version != plain.version
