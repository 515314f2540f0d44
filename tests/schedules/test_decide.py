"""What a schedule decides at a fire, from its state: pure, no database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flowlog.schedules import decide
from flowlog.schedules.events import (
    ScheduleCreated,
    ScheduleEvent,
    ScheduleFired,
    ScheduleQueued,
    ScheduleSkipped,
    ScheduleUpdated,
    encode,
)
from flowlog.schedules.state import (
    ScheduleState,
    ScheduleStatus,
    evolve,
    from_snapshot,
    snapshot,
)
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.errors import Code, WorkflowError

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def made(**spec: object) -> ScheduleState:
    settings = ScheduleSpec.model_validate({"flowName": "backup", "intervalSeconds": 60, **spec})
    events = decide.create(None, "nightly", "t1", settings, False, T0)
    return evolve(None, events[0], 1, T0)


def after(state: ScheduleState, events: list[ScheduleEvent], at: datetime) -> ScheduleState:
    for offset, event in enumerate(events, 1):
        state = evolve(state, event, state.version + offset, at)
    return state


def test_an_interval_schedule_fires_once_per_interval_with_a_flow_id_per_fire() -> None:
    state = made()
    assert decide.fire(state, T0 + timedelta(seconds=59), previous_running=False) == []
    first = decide.fire(state, T0 + timedelta(seconds=60), previous_running=False)
    assert len(first) == 1
    fired = first[0]
    assert isinstance(fired, ScheduleFired)
    assert fired.fire_time == T0 + timedelta(seconds=60)
    assert fired.flow_id == decide.flow_id_for(state, fired.fire_time)
    state = after(state, first, T0 + timedelta(seconds=60))
    assert decide.fire(state, T0 + timedelta(seconds=61), previous_running=False) == []
    assert decide.next_due(state, T0) == T0 + timedelta(seconds=120)
    second = decide.fire(state, T0 + timedelta(seconds=120), previous_running=False)
    assert isinstance(second[0], ScheduleFired)
    assert second[0].flow_id != fired.flow_id


def test_overlap_skip_allow_and_queue() -> None:
    at = T0 + timedelta(seconds=60)
    for overlap, kind in (("skip", ScheduleSkipped), ("allow", ScheduleFired),
                          ("queue", ScheduleQueued)):  # fmt: skip
        events = decide.fire(made(overlap=overlap), at, previous_running=True)
        assert [type(e) for e in events] == [kind], overlap
    queued = after(made(overlap="queue"), [ScheduleQueued(fire_time=at)], at)
    # A second fire while one is queued is skipped; the queued one fires once the flow ended.
    later = T0 + timedelta(seconds=120)
    still = decide.fire(queued, later, previous_running=True)
    assert [type(e) for e in still] == [ScheduleSkipped]
    soon = at + timedelta(seconds=30)
    assert decide.next_due(queued, soon) == soon + decide.QUEUE_CHECK
    ended = decide.fire(queued, at + timedelta(seconds=5), previous_running=False)
    assert len(ended) == 1
    assert isinstance(ended[0], ScheduleFired)
    assert ended[0].queued
    assert ended[0].fire_time == at
    # Changed to "allow" while a fire waits, with another due: one fire an append (the
    # scheduler makes the flow of each), the queued one first.
    allowing = after(queued, [ScheduleUpdated(spec={**queued.spec.model_dump(mode="json"),
                                                    "overlap": "allow"})], at)  # fmt: skip
    first = decide.fire(allowing, later, previous_running=False)
    assert [(type(e), getattr(e, "queued", None)) for e in first] == [(ScheduleFired, True)]
    second = decide.fire(after(allowing, first, later), later, previous_running=True)
    assert [type(e) for e in second] == [ScheduleFired]


@pytest.mark.parametrize(("catch_up", "runs"), [("skip", False), ("last", True)])
def test_after_downtime_missed_fires_are_skipped_or_the_last_runs(
    catch_up: str, runs: bool
) -> None:
    state = made(catchUp=catch_up, intervalSeconds=600)
    back = T0 + timedelta(hours=2, minutes=5)  # 12 fires fell while nothing ran
    events = decide.fire(state, back, previous_running=False)
    skipped = [e for e in events if isinstance(e, ScheduleSkipped)]
    fired = [e for e in events if isinstance(e, ScheduleFired)]
    assert skipped[0].why == "missed"
    assert skipped[0].first == T0 + timedelta(minutes=10)
    if runs:
        assert skipped[0].count == 11
        assert [f.fire_time for f in fired] == [T0 + timedelta(hours=2)]
    else:
        assert skipped[0].count == 12
        assert fired == []
    state = after(state, events, back)
    assert state.considered_until == T0 + timedelta(hours=2)
    assert decide.fire(state, back, previous_running=False) == []


def test_paused_deleted_and_ended_schedules_do_not_fire() -> None:
    state = made(endAt=(T0 + timedelta(seconds=90)).isoformat())
    assert decide.next_fires(state, 5) == [T0 + timedelta(seconds=60)]
    paused = after(state, decide.pause(state, "nightly", "maintenance"), T0)
    assert paused.status is ScheduleStatus.PAUSED
    assert decide.fire(paused, T0 + timedelta(hours=1), previous_running=False) == []
    assert decide.next_due(paused, T0) is None
    resumed = after(
        paused,
        decide.resume(paused, "nightly", "", T0 + timedelta(seconds=70)),
        T0 + timedelta(seconds=70),
    )
    # Resumed after its only fire time: nothing is made up for, and nothing is left.
    assert decide.fire(resumed, T0 + timedelta(seconds=80), previous_running=False) == []
    assert decide.next_due(resumed, T0) is None
    deleted = after(state, decide.delete(state, "nightly", ""), T0)
    with pytest.raises(WorkflowError) as gone:
        decide.pause(deleted, "nightly", "")
    assert gone.value.code is Code.SCHEDULE_NOT_FOUND


def test_a_schedule_made_again_is_another_incarnation_with_other_flow_ids() -> None:
    state = made()
    deleted = after(state, decide.delete(state, "nightly", ""), T0)
    spec = state.spec
    again = after(deleted, decide.create(deleted, "nightly", "t1", spec, False, T0), T0)
    fire = T0 + timedelta(seconds=60)
    assert again.incarnation != state.incarnation
    assert decide.flow_id_for(again, fire) != decide.flow_id_for(state, fire)
    with pytest.raises(WorkflowError) as taken:
        decide.create(again, "nightly", "t1", spec, False, T0)
    assert taken.value.code is Code.SCHEDULE_FAILED


def test_bad_settings_are_refused_with_every_problem() -> None:
    spec = ScheduleSpec.model_validate(
        {"flowName": "backup", "cron": "61 * * * *", "intervalSeconds": 5,
         "timezone": "Mars/Olympus", "bizIdTemplate": "{{nope}}"}
    )  # fmt: skip
    with pytest.raises(WorkflowError) as refused:
        decide.create(None, "x", "", spec, False, T0)
    assert refused.value.code is Code.BAD_INPUT
    for word in ("cron", "time zone", "nope"):
        assert word in refused.value.message


def test_the_flow_of_a_fire_renders_its_templates() -> None:
    state = made(
        timezone="Europe/Berlin",
        bizIdTemplate="backup-{{fireTimeLocal:%Y%m%d-%H%M}}",
        context={"day": "{{fireTime:%A}}", "nested": ["{{scheduleId}}"], "n": 3},
    )
    biz_id, context = decide.flow_of_fire(state, T0)
    assert biz_id == "backup-20261130-1300"
    assert context["day"] == "Monday"
    assert context["nested"] == ["nightly"]
    assert context["n"] == 3
    assert context["scheduleId"] == "nightly"
    assert context["scheduledFor"] == T0.isoformat()


def test_a_created_event_records_the_settings_as_json() -> None:
    events = decide.create(None, "s", "", ScheduleSpec(flowName="f", cron="0 2 * * *"), False, T0)
    assert isinstance(events[0], ScheduleCreated)
    assert events[0].spec["cron"] == "0 2 * * *"


def test_an_update_that_changes_no_timing_drops_no_fire_and_snapshots_round_trip() -> None:
    """A fire whose time has passed but whose jitter has not is still due after an update of
    the description; the state's snapshot (kept in its row) is the state."""
    state = made(jitterSeconds=50)
    fire = T0 + timedelta(seconds=60)
    at = fire + decide.jitter_of(state, fire)
    spec = state.spec.model_dump(mode="json") | {"description": "now described"}
    described = after(state, decide.update(state, "nightly", ScheduleSpec.model_validate(spec),
                                           fire + timedelta(microseconds=1)), fire)  # fmt: skip
    assert described.considered_until == state.considered_until
    fired = decide.fire(described, max(at, fire), previous_running=False)
    assert [type(e) for e in fired] == [ScheduleFired]
    retimed = ScheduleSpec.model_validate(spec | {"intervalSeconds": 120})
    changed = after(state, decide.update(state, "nightly", retimed, fire), fire)
    assert changed.considered_until == fire  # the new timing's past is not made up for
    for each in (state, described, changed, after(changed, fired, at)):
        assert from_snapshot(snapshot(each), each.created_at, each.updated_at) == each


def unchecked(**spec: object) -> ScheduleState:
    """A schedule as recorded before its settings were held to the create's limits: its
    ScheduleCreated written without decide.create's checks."""
    settings = {"flowName": "backup", "intervalSeconds": 60, **spec}
    return evolve(None, ScheduleCreated(schedule_id="nightly", spec=settings), 1, T0)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"bizIdTemplate": "{{fireTime:%A}}" * 22 + "abc"},
         "bizIdTemplate: renders bizIds of up to 201 characters, and a flow's bizId takes 200"),
        ({"bizIdTemplate": "{{fireTime:%1000Y}}"}, "'%1000Y' is not an allowed directive"),
        ({"context": {"k": "{{fireTimeLocal}}" * 31_000}},
         "context: at its longest, its create request would be 1,085,"),
    ],
)  # fmt: skip
def test_settings_whose_longest_flow_the_create_would_refuse_are_refused(
    settings: dict[str, object], problem: str
) -> None:
    spec = ScheduleSpec.model_validate({"flowName": "backup", "intervalSeconds": 60, **settings})
    with pytest.raises(WorkflowError) as refused:
        decide.create(None, "nightly", "t1", spec, False, T0)
    assert refused.value.code is Code.BAD_INPUT
    assert problem in refused.value.message
    with pytest.raises(WorkflowError) as refused:
        decide.update(made(), "nightly", spec, T0)
    assert problem in refused.value.message


def test_settings_whose_longest_flow_fits_are_taken() -> None:
    made(bizIdTemplate="{{fireTime:%A}}" * 22 + "ab")  # 200 characters at the longest
    made(context={"k": "{{fireTimeLocal}}" * 29_000})  # 1,015,000 bytes at the longest


def test_a_fire_the_create_would_refuse_is_skipped_as_refused_and_makes_no_flow() -> None:
    at = T0 + timedelta(seconds=60)
    for state, error in (
        (unchecked(bizIdTemplate="{{fireTime:%1000Y}}"), "'%1000Y' is not an allowed directive"),
        (unchecked(bizIdTemplate=f"{{{{fireTime:{'%A' * 40}}}}}"), "bizId: String should have"),
        (unchecked(context={"k": "{{fireTime}}" * 50_000}), "over the 1,048,576 a request takes"),
    ):
        with pytest.raises(decide.FireRefused, match=error):
            decide.flow_of_fire(state, at)
        events = decide.fire(state, at, previous_running=False)
        assert len(events) == 1
        skipped = events[0]
        assert isinstance(skipped, ScheduleSkipped)
        assert (skipped.first, skipped.last, skipped.count, skipped.why) == (at, at, 1, "refused")
        assert skipped.error is not None
        assert error in skipped.error
        refused = after(state, events, at)
        assert (refused.fires, refused.skipped, refused.last_flow_id) == (0, 1, None)
        assert decide.next_due(refused, at) == at + timedelta(seconds=60)  # it fires on


def test_a_queued_fire_the_create_would_refuse_leaves_the_queue() -> None:
    at = T0 + timedelta(seconds=60)
    state = unchecked(overlap="queue", bizIdTemplate="{{fireTime:%-d}}")
    queued = after(state, [ScheduleQueued(fire_time=at)], at)
    events = decide.fire(queued, at + timedelta(seconds=5), previous_running=False)
    assert [(type(e), getattr(e, "why", None)) for e in events] == [(ScheduleSkipped, "refused")]
    assert after(queued, events, at).queued is None
    # Skips of other fires (missed, overlap) leave it queued, and record no error.
    other = ScheduleSkipped(first=at, last=at, count=1, why="overlap")
    assert after(queued, [other], at).queued == at
    assert "error" not in encode(other)[1]
