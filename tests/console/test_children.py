"""A parent's page at a version (pure): its children's counts then, a parallel node's branches
as they were at the time of the parent's event (their lanes on the parent's time axis, their
nodes coloured on the parent's graph), and the same counts and lanes now."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from flowlog.console.children import Group, Kin, family
from flowlog.console.flowview import FlowView, build
from flowlog.console.timeline import AXIS
from flowlog.demo import DEFINITIONS
from flowlog.projections.reads import ChildRow
from flowlog.workflow.events import (
    ChildrenCommanded,
    ChildrenEnded,
    ChildrenStarted,
    ContextSet,
    FlowCreated,
    FlowEvent,
    FlowFailed,
    FlowFinished,
    FlowRetried,
    FlowStarted,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    ParentLink,
)
from tests.console.histories import at, created, lines, succeeded

FLEET = DEFINITIONS[2].describe()
FINISHED, ERROR = "Finished", "Error"


def mapped(n: int = 1, attempt: int = 1, adopts: str | None = None) -> NodeStarted:
    return NodeStarted(node_id=f"f1.{n}", key="start", name="backupEach", kind="map",
                       attempt=attempt, adopts=adopts)  # fmt: skip


def started(first: int, count: int, n: int = 1) -> ChildrenStarted:
    return ChildrenStarted(node_id=f"f1.{n}", first=first, count=count, total=40, limit=10)


def ended(*pairs: tuple[int, str], n: int = 1) -> ChildrenEnded:
    return ChildrenEnded(node_id=f"f1.{n}", ended=list(pairs))


MAP = [
    (created(), 0), (FlowStarted(), 0), (mapped(), 1),
    (started(0, 10), 1),                                             # 4
    (ended(*[(i, FINISHED) for i in range(9)], (9, ERROR)), 2),      # 5
    (started(10, 8), 2),                                             # 6
    (ended((10, FINISHED), (11, FINISHED), (12, FINISHED)), 3),      # 7
]  # fmt: skip
LATER = (ContextSet(changes={"seen": True}), 9)
"""An event after those a test looks at: they are then not the latest version."""


def at_version(history: list, version: int, kin: Kin | None = None) -> FlowView:
    return build(lines(history), version, FLEET, at(100), kin)


def the_group(view: FlowView) -> Group:
    (group,) = view.children
    return group


def test_a_map_is_counted_as_the_parent_had_counted_its_children_then() -> None:
    words = {v: the_group(at_version([*MAP, LATER], v)).words for v in (3, 4, 5, 6)}
    assert words == {
        3: "no child started yet",
        4: "0/40 finished · 10 running",
        5: "9/40 finished · 1 failed",
        6: "9/40 finished · 1 failed · 8 running",
    }
    # What the children's rows say now does not change what the parent had counted then.
    group = the_group(at_version([*MAP, LATER], 7, Kin(counts={"f1.1": {FINISHED: 1}})))
    assert group.words == "12/40 finished · 1 failed · 5 running"
    assert (group.key, group.kind, group.node_id, group.sequence) == ("start", "map", "f1.1", 1)
    assert group.not_started == 22
    assert group.children == ()  # a map's are in the list, not on the page
    # The graph's node counts the children of its latest execution.
    assert at_version([*MAP, LATER], 7).counts == {"start": group}


def test_now_the_counts_are_the_childrens_own_statuses() -> None:
    history = [*MAP, (ended((13, FINISHED)), 4)]
    kin = Kin(counts={"f1.1": {FINISHED: 13, ERROR: 2, "Processing": 2, "Stopped": 1}})
    group = the_group(at_version(history, len(history), kin))
    # A child retried or ended since the parent last counted shows as it is.
    assert group.words == "13/40 finished · 2 failed · 3 running"
    assert (group.total, group.started, group.not_started) == (40, 18, 22)


def test_a_retry_that_takes_over_the_children_counts_with_them() -> None:
    failure = NodeFailed(node_id="f1.1", error_code=40133, error_message="children failed",
                         next=None)  # fmt: skip
    history = [
        *MAP[:5], (failure, 2), (FlowFailed(error_code=40133, error_message="x"), 2),
        (FlowRetried(from_key="start"), 3), (mapped(2, attempt=2, adopts="f1.1"), 3),
        (ChildrenCommanded(node_id="f1.2", command="retry", indexes=[9]), 3), LATER,
    ]  # fmt: skip
    before = the_group(at_version(history, len(history) - 2))
    after = the_group(at_version(history, len(history) - 1))
    assert before.words == "9/40 finished · 1 failed"
    assert after.words == "9/40 finished · 1 running"  # the failed child runs again
    assert after.node_id == "f1.1"  # one group: the children of the first execution


def test_children_canceled_when_the_node_ends_without_them_count_as_canceled() -> None:
    cancel = ChildrenCommanded(node_id="f1.1", command="cancel", indexes=[3, 4])
    history = [*MAP[:4], (cancel, 1.5), LATER]
    assert the_group(at_version(history, 5)).words == "0/40 finished · 2 canceled · 8 running"


# -- a parallel node's branches ----------------------------------------------------------------

PARALLEL = [
    (created(), 0), (FlowStarted(), 0),
    (NodeStarted(node_id="f1.1", key="checks", name="verifyAndReport", kind="parallel",
                 attempt=1), 1),                                                 # 3
    (ChildrenStarted(node_id="f1.1", first=0, count=2, total=2, limit=2), 1.2),  # 4
    (ChildrenEnded(node_id="f1.1", ended=[(1, FINISHED)]), 2.5),                 # 5
    (ChildrenEnded(node_id="f1.1", ended=[(0, FINISHED)]), 4),                   # 6
    (succeeded(1, "done"), 4),
    (NodeStarted(node_id="f1.2", key="done", name="done", kind="sync", attempt=1), 4),
    (succeeded(2, None), 4.1), (FlowFinished(), 4.1),                            # 10
]  # fmt: skip


def branch(flow_id: str, index: int, name: str, key: str, node: str, ends: float) -> list:
    link = ParentLink(flow_id="f1", node_id="f1.1", index=index, branch=name)
    events: Sequence[tuple[FlowEvent, float]] = [
        (FlowCreated(flow_id=flow_id, name="fleet-backup", biz_id=f"b/{name}", biz_type="t",
                     definition_version="v1", parent=link, entry=key), 1.1),
        (FlowStarted(), 1.1),
        (NodeStarted(node_id=f"{flow_id}.1", key=key, name=node, kind="sync", attempt=1), 1.3),
        (NodeSucceeded(node_id=f"{flow_id}.1", result="ok\n", next=None), ends),
        (FlowFinished(), ends),
    ]  # fmt: skip
    return [(event, at(seconds)) for event, seconds in events]


KIN = Kin(
    counts={"f1.1": {FINISHED: 2}},
    listed=[ChildRow("c0", "f1.1", 0, "verify", FINISHED),
            ChildRow("c1", "f1.1", 1, "report", FINISHED)],
    histories={"c0": branch("c0", 0, "verify", "verify", "verifyBackups", 3.9),
               "c1": branch("c1", 1, "report", "report", "sendReport", 2.4)},
)  # fmt: skip


def statuses(view: FlowView) -> dict[str | None, str | None]:
    return {child.branch: child.status for child in the_group(view).children}


def test_each_branch_is_shown_as_it_was_at_the_time_of_the_parents_event() -> None:
    # Version 5 (2.5 s): the report had ended, the verification still ran.
    view = at_version(PARALLEL, 5, KIN)
    assert statuses(view) == {"verify": "Processing", "report": FINISHED}
    assert the_group(view).words == "1/2 finished · 1 running"
    verify, report = view.lanes["f1.1"]
    assert (verify.branch, verify.status, report.branch, report.status) == (
        "verify", "Processing", "report", FINISHED)  # fmt: skip
    assert [r.outcome for r in verify.rows] == ["Running"]
    assert verify.ended_at is None
    assert report.ended_at == at(2.4)
    # The branches' nodes are coloured on the parent's graph as they were then.
    assert view.marks["verify"].status == "Processing"
    assert view.marks["verify"].current
    assert view.marks["report"].status == FINISHED
    assert "done" not in view.marks

    # Version 3 (1 s): the parallel node had started, its children not yet.
    early = at_version(PARALLEL, 3, KIN)
    assert statuses(early) == {"verify": None, "report": None}
    assert [lane.rows for lane in early.lanes["f1.1"]] == [(), ()]
    assert "verify" not in early.marks
    assert the_group(early).words == "no child started yet"


def test_lanes_stand_on_the_parents_time_axis() -> None:
    view = at_version(PARALLEL, len(PARALLEL), KIN)
    assert view.is_latest
    assert the_group(view).words == "2/2 finished"
    assert statuses(view) == {"verify": FINISHED, "report": FINISHED}
    timeline = view.timeline
    assert (timeline.start, timeline.end) == (at(0), at(4.1))
    checks = next(row for row in timeline.rows if row.node_id == "f1.1")
    verify, report = view.lanes["f1.1"]
    for lane, begins, ends in ((verify, 1.3, 3.9), (report, 1.3, 2.4)):
        (segment,) = lane.rows[0].segments
        assert segment.x == pytest.approx(AXIS * begins / 4.1)
        assert segment.x + segment.width == pytest.approx(AXIS * ends / 4.1)
    assert checks.segments[0].x < verify.rows[0].segments[0].x  # forked after it started
    # The graph draws the branches in their children's order, the same at every version.
    for version in (3, 5, len(PARALLEL)):
        drawn = at_version(PARALLEL, version, KIN).graph
        assert drawn is not None
        assert (drawn.node("verify").row, drawn.node("report").row) == (0, 1)


def test_a_flow_without_children_has_no_group_and_no_lane() -> None:
    view = at_version(MAP[:3], 3)
    assert len(view.children) == 1  # its map node has started: counted, nothing more
    plain = build(lines([(created(), 0), (FlowStarted(), 0)]), 2, DEFINITIONS[0].describe(),
                  at(5))  # fmt: skip
    assert (plain.children, dict(plain.lanes), plain.counts) == ((), {}, {})
    assert family([], Kin(), latest=True) == ()


def test_a_running_branch_runs_up_to_the_moment_shown() -> None:
    view = at_version(PARALLEL, 5, KIN)
    assert view.timeline.end == at(2.5)  # the time of version 5's event, not now
    verify, _ = view.lanes["f1.1"]
    (segment,) = verify.rows[0].segments
    assert segment.end == at(2.5)
    assert segment.x + segment.width == pytest.approx(AXIS)
