"""The timeline: executions, their parts, stopped stretches, drawn on one axis."""

from __future__ import annotations

from flowlog.console.timeline import AXIS, MIN_WIDTH, build
from flowlog.workflow.events import FlowResumed, FlowStarted, FlowStopped
from tests.console.histories import at, created, failed, started, submitted, succeeded


def test_runs_polls_retry_waits_and_stops_are_drawn_to_scale() -> None:
    events = [
        (created(), at(0)),
        (FlowStarted(), at(0)),
        (started("start", "backup", 1), at(0)),
        (failed(1, will_retry=True, retry_at=at(20)), at(10)),
        (started("start", "backup", 2, attempt=2), at(20)),
        (succeeded(2, "up"), at(30)),
        (FlowStopped(reason="window"), at(30)),
        (FlowResumed(), at(50)),
        (started("up", "upload", 3, kind="polling"), at(50)),
        (submitted(3, 55), at(55)),
        (succeeded(3, None), at(100)),
    ]
    line = build(events, at(100))
    assert [(r.name, r.attempt, r.outcome) for r in line.rows] == [
        ("backup", 1, "Error"),
        ("backup", 2, "Finished"),
        ("upload", 1, "Finished"),
    ]
    first, second, upload = line.rows
    assert [s.kind for s in first.segments] == ["run", "wait"]
    assert first.segments[0].x == 0
    assert first.segments[0].width == AXIS * 0.1
    assert first.segments[1].x == AXIS * 0.1
    assert first.segments[1].width == AXIS * 0.1  # waited until the second attempt
    assert [s.kind for s in second.segments] == ["run"]
    assert [(s.kind, s.x, s.width) for s in upload.segments] == [
        ("run", AXIS * 0.5, AXIS * 0.05),
        ("poll", AXIS * 0.55, AXIS * 0.45),
    ]
    assert [(b.x, b.width) for b in line.bands] == [(AXIS * 0.3, AXIS * 0.2)]
    assert line.ticks[0].x == 0
    assert line.ticks[-1].x == AXIS
    assert line.ticks[-1].offset.total_seconds() == 100


def test_a_running_node_reaches_the_end_and_tiny_ones_stay_visible() -> None:
    events = [
        (created(), at(0)),
        (FlowStarted(), at(0)),
        (started("start", "quick", 1), at(0)),
        (succeeded(1, "slow"), at(0.001)),
        (started("slow", "slow", 2), at(0.001)),
    ]
    line = build(events, at(60))
    quick, slow = line.rows
    assert quick.segments[0].width == MIN_WIDTH
    assert slow.outcome == "Running"
    assert slow.ended_at is None
    assert abs(slow.segments[0].x + slow.segments[0].width - AXIS) < 0.01


def test_an_interrupted_node_says_so() -> None:
    events = [
        (created(), at(0)),
        (FlowStarted(), at(0)),
        (started("start", "backup", 1), at(0)),
        (failed(1, code=40110), at(5)),
        (started("start", "backup", 2, attempt=2), at(5)),
    ]
    line = build(events, at(10))
    assert [r.outcome for r in line.rows] == ["Interrupted", "Running"]
    assert line.rows[0].error_code == 40110
