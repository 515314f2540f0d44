"""A flow's page at a version: the state then, what changed, the marks on the graph, and the
actions its current state allows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from flowlog.console.flowview import allowed_actions, build
from flowlog.console.present import Task, Waiting
from flowlog.demo import DEFINITIONS
from flowlog.workflow.events import (
    CancelRequested,
    FlowFailed,
    FlowStarted,
    FlowStopped,
    NodeStarted,
    NodeWaiting,
)
from flowlog.workflow.state import FlowStatus
from tests.console.histories import at, created, failed, lines, started, succeeded

DEMO = DEFINITIONS[0].describe()


def _failed_flow() -> list:
    return lines([
        (created(clusterId="c-1"), 0),
        (FlowStarted(), 0),
        (started("start", "backup", 1), 1),
        (succeeded(1, "backupDone", backupPath="/b"), 2),
        (started("backupDone", "upload", 2, kind="polling"), 2),
        (failed(2, next="fail"), 3),
        (started("fail", "backupFail", 3), 3),
        (succeeded(3, None), 4),
        (FlowFailed(error_code=7001, error_message="boom"), 4),
    ])  # fmt: skip


def test_each_version_is_the_flow_as_it_was_then() -> None:
    history = _failed_flow()
    first = build(history, 1, DEMO, at(100))
    assert first.state.status is FlowStatus.INITIALIZING
    assert first.marks == {}
    assert first.timeline.rows == ()
    assert {c.where for c in first.changes} >= {"flowId", "status", "context.clusterId"}
    assert first.started_by == "token:alice"

    mid = build(history, 5, DEMO, at(100))
    assert mid.state.context["backupPath"] == "/b"
    assert mid.marks["start"].status == "Finished"
    assert mid.marks["backupDone"].current
    assert mid.marks["backupDone"].status == "Processing"
    assert [(c.where, c.before, c.after) for c in mid.changes][:1] == [
        ("currentNode", None, "upload")
    ]
    # Every event changes these; they are not news.
    assert not {c.where for c in mid.changes} & {"version", "updatedAt"}
    # The timeline stops at the moment of the version shown, not now.
    assert mid.timeline.end == at(2)
    assert mid.timeline.rows[-1].ended_at is None

    last = build(history, len(history), DEMO, at(100))
    assert last.is_latest
    assert last.marks["backupDone"].status == "Error"
    assert last.marks["fail"].status == "Finished"
    assert not any(m.current for m in last.marks.values())
    assert last.actions == ("retry",)
    assert last.graph is not None
    assert last.timeline.end == at(4)  # an ended flow's timeline ends with it, not now


def test_actions_are_what_decide_allows_now() -> None:
    running = lines([(created(), 0), (FlowStarted(), 0), (started("start", "backup", 1), 1)])
    assert build(running, 3, DEMO, at(5)).actions == ("stop", "cancel")
    # The actions are the current state's, whatever version is shown.
    assert build(running, 1, DEMO, at(5)).actions == ("stop", "cancel")
    stopped = lines([(created(), 0), (FlowStarted(), 0), (FlowStopped(reason="w"), 1)])
    assert build(stopped, 3, DEMO, at(5)).actions == ("start", "cancel")
    fresh = lines([(created(), 0)])
    view = build(fresh, 1, None, at(5))
    assert view.actions == ("start", "stop", "cancel")  # the seed lets a new flow be stopped
    assert view.graph is None
    assert view.started_by == ""


def test_a_version_outside_the_history_is_refused() -> None:
    history = _failed_flow()
    for version in (0, len(history) + 1):
        with pytest.raises(ValueError, match="not in a history"):
            build(history, version, DEMO, at(100))


def test_allowed_actions_of_a_finished_flow_are_none() -> None:
    from flowlog.workflow.events import FlowFinished

    history = lines([
        (created(), 0), (FlowStarted(), 0), (started("start", "backup", 1), 1),
        (succeeded(1, None), 2), (FlowFinished(), 2),
    ])  # fmt: skip
    view = build(history, 5, DEMO, at(5))
    assert allowed_actions(view.state, at(5)) == ()


RESTORE = DEFINITIONS[1].describe()


def _restore(*more: tuple[object, float]) -> list:
    return lines([
        (created(), 0), (FlowStarted(), 0), (started("start", "checkBackup", 1), 1),
        (succeeded(1, "approval"), 2), (started("approval", "approval", 2, kind="callback"), 2),
        *more,  # type: ignore[list-item]
    ])  # fmt: skip


def test_a_flow_waiting_for_a_person_says_since_when() -> None:
    asking = _restore()  # its action runs: it does not wait yet
    assert build(asking, len(asking), RESTORE, at(10)).waiting is None
    waiting = NodeWaiting(node_id="f1.2", deadline=at(86403), callback="c1")
    history = _restore((waiting, 3))
    view = build(history, len(history), RESTORE, at(7203))
    assert view.waiting == Waiting("approval", "callback", since=at(3), deadline=at(86403))
    # What the flow waits for now, whatever version is shown.
    assert build(history, 2, RESTORE, at(7203)).waiting == view.waiting
    stopped = _restore((waiting, 3), (FlowStopped(reason="w"), 4))
    assert build(stopped, len(stopped), RESTORE, at(10)).waiting == view.waiting
    canceling = _restore((waiting, 3), (CancelRequested(reason="no"), 4))
    assert build(canceling, len(canceling), RESTORE, at(10)).waiting is None


def test_a_flow_waiting_on_a_timer_says_until_when() -> None:
    history = lines([
        (created(), 0), (FlowStarted(), 0), (started("wait", "coolDown", 1, kind="timer"), 1),
        (NodeWaiting(node_id="f1.1", wake_at=at(3601)), 1.5),
    ])  # fmt: skip
    view = build(history, len(history), None, at(60))
    assert view.waiting == Waiting("coolDown", "timer", since=at(1.5), wake_at=at(3601))


def test_the_task_shown_is_that_of_the_node_running_now() -> None:
    render = NodeStarted(node_id="f1.1", key="render", name="render", kind="sync", attempt=1,
                         queue="remote")  # fmt: skip
    history = lines([(created(), 0), (FlowStarted(), 0), (render, 1)])
    task = Task("remote", "f1.1", offered_at=at(1), worker="w-1", claimed_at=at(2),
                expires_at=at(32))  # fmt: skip
    view = build(history, 3, None, at(5), task=task)
    assert view.task == Task("remote", "f1.1", offered_at=at(1), worker="w-1",
                             claimed_at=at(2), expires_at=at(32), node="render")  # fmt: skip
    assert view.state.nodes[0].queue == "remote"
    # Who holds it is now's, whatever version is shown.
    assert build(history, 1, None, at(5), task=task).task == view.task
    # A task read after the history moved on (another node's) is not this page's to show.
    assert build(history, 3, None, at(5), task=replace(task, node_id="f1.2")).task is None
    done = lines([(created(), 0), (FlowStarted(), 0), (render, 1), (succeeded(1, None), 2)])
    assert build(done, 4, None, at(5), task=task).task is None
    assert build(done, 4, None, at(5)).state.nodes[0].queue == "remote"
