"""The timing of schedules: fire times (cron across DST changes, intervals), jitter, which fires
are due after a pause, and the checks of timing settings. No database."""

from __future__ import annotations

import bisect
import math
import re
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flowlog.schedules import timing
from flowlog.schedules.timing import (
    SKIP_COUNT_LIMIT,
    Due,
    Timing,
    due,
    fire_times,
    jitter,
    timing_problems,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def at(text: str) -> datetime:
    """A time in UTC, written without its zone."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cron(expression: str, zone: str = "UTC", **settings) -> Timing:
    return Timing(expression, None, ANCHOR, zone, **settings)


def every(seconds: float, anchor: datetime = ANCHOR, **settings) -> Timing:
    return Timing(None, seconds, anchor, **settings)


def fires_on(schedule: Timing, day: str, zone: ZoneInfo) -> list[datetime]:
    """The fire times of a schedule on a day of the calendar of `zone`."""
    midnight = datetime.fromisoformat(day).replace(tzinfo=zone)
    fires = fire_times(schedule, midnight - timedelta(microseconds=1), 100)
    return [fire for fire in fires if fire.astimezone(zone).date() == midnight.date()]


# Cron


def test_cron_fires_in_utc_strictly_after_the_given_time() -> None:
    fires = fire_times(cron("*/20 * * * *"), at("2026-01-01T00:05"), 4)
    assert fires == [
        at("2026-01-01T00:20"),
        at("2026-01-01T00:40"),
        at("2026-01-01T01:00"),
        at("2026-01-01T01:20"),
    ]
    assert all(fire.tzinfo is UTC for fire in fires)
    assert fire_times(cron("0 * * * *"), at("2026-01-01T01:00"), 1) == [at("2026-01-01T02:00")]
    just_before = at("2026-01-01T00:59:59.999999")
    assert fire_times(cron("0 * * * *"), just_before, 1) == [at("2026-01-01T01:00")]
    assert fire_times(cron("0 * * * *"), ANCHOR, 0) == []


def test_cron_is_read_in_the_schedule_time_zone() -> None:
    nightly = cron("0 2 * * *", "Europe/Berlin")
    assert fire_times(nightly, at("2026-01-10T12:00"), 1) == [at("2026-01-11T01:00")]  # CET
    assert fire_times(nightly, at("2026-07-10T12:00"), 1) == [at("2026-07-11T00:00")]  # CEST
    # The instant `after` names counts, not how it is written.
    berlin_noon = datetime(2026, 7, 10, 14, 0, tzinfo=BERLIN)
    assert fire_times(nightly, berlin_noon, 1) == [at("2026-07-11T00:00")]


def test_spring_forward_in_berlin_runs_a_skipped_time_once_when_the_gap_ends() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    nightly = cron("30 2 * * *", "Europe/Berlin")
    assert fire_times(nightly, at("2026-03-28T12:00"), 3) == [
        at("2026-03-29T01:00"),  # 03:00 CEST, the end of the gap
        at("2026-03-30T00:30"),  # 02:30 CEST
        at("2026-03-31T00:30"),
    ]
    assert fires_on(nightly, "2026-03-29", BERLIN) == [at("2026-03-29T01:00")]
    assert at("2026-03-29T01:00").astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"


def test_fall_back_in_berlin_runs_a_repeated_time_once_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice that day.
    nightly = cron("30 2 * * *", "Europe/Berlin")
    assert fire_times(nightly, at("2026-10-24T12:00"), 2) == [
        at("2026-10-25T00:30"),  # 02:30 CEST, the first 02:30
        at("2026-10-26T01:30"),  # 02:30 CET
    ]
    assert fires_on(nightly, "2026-10-25", BERLIN) == [at("2026-10-25T00:30")]
    # From within the repeated hour (02:15 CET), the second 02:30 is not a fire either.
    assert fire_times(nightly, at("2026-10-25T01:15"), 1) == [at("2026-10-26T01:30")]


def test_an_hourly_cron_fires_on_every_real_hour_across_dst_changes() -> None:
    hourly = cron("0 * * * *", "Europe/Berlin")
    long_day = fires_on(hourly, "2026-10-25", BERLIN)
    assert len(set(long_day)) == len(long_day) == 25
    assert all(later - earlier == timedelta(hours=1) for earlier, later in pairwise(long_day))
    assert [fire.astimezone(BERLIN).hour for fire in long_day] == [0, 1, 2, 2, *range(3, 24)]
    short_day = fires_on(hourly, "2026-03-29", BERLIN)
    assert len(short_day) == 23
    assert [fire.astimezone(BERLIN).hour for fire in short_day] == [0, 1, *range(3, 24)]
    # A `*` in the minute field exempts a fixed hour from the DST rules too.
    quarters = cron("*/15 2 * * *", "Europe/Berlin")
    assert fires_on(quarters, "2026-03-29", BERLIN) == []
    assert fires_on(quarters, "2026-10-25", BERLIN) == [
        at("2026-10-25T00:00") + k * 15 * MINUTE for k in range(8)
    ]


def test_dst_changes_in_new_york() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT; 2026-11-01: 02:00 EDT goes back to 01:00 EST.
    assert fires_on(cron("30 2 * * *", "America/New_York"), "2026-03-08", NEW_YORK) == [
        at("2026-03-08T07:00")  # 03:00 EDT
    ]
    assert fires_on(cron("30 1 * * *", "America/New_York"), "2026-11-01", NEW_YORK) == [
        at("2026-11-01T05:30")  # 01:30 EDT, the first 01:30
    ]
    weekdays = cron("0 9 * * 1-5", "America/New_York")
    assert fire_times(weekdays, at("2026-03-06T15:00"), 2) == [
        at("2026-03-09T13:00"),  # Monday 09:00 EDT, the weekend in between
        at("2026-03-10T13:00"),
    ]


@pytest.mark.parametrize(
    "expression", ["30 2 * * *", "0,30 1-3 * * *", "0 2,3 * * *", "*/20 1-3 * * *"]
)
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_cron_fire_times_are_strictly_ascending_through_a_year(expression: str, zone: str) -> None:
    schedule = cron(expression, zone, end_at=ANCHOR + timedelta(days=366))
    fires = fire_times(schedule, ANCHOR, 5000)
    assert fires[-1] > ANCHOR + timedelta(days=365)
    assert all(earlier < later for earlier, later in pairwise(fires))
    # Asking again from any fire gives the rest of the same list.
    for index in range(0, len(fires), 37):
        assert fire_times(schedule, fires[index], 3) == fires[index + 1 : index + 4]


# Intervals


def test_an_interval_fires_at_its_anchor_and_every_interval_after() -> None:
    assert fire_times(every(7.5), ANCHOR - SECOND, 3) == [
        ANCHOR,
        ANCHOR + timedelta(seconds=7.5),
        ANCHOR + timedelta(seconds=15),
    ]
    assert fire_times(every(7.5), ANCHOR, 1) == [ANCHOR + timedelta(seconds=7.5)]
    assert fire_times(every(1.5), ANCHOR + SECOND, 2) == [
        ANCHOR + timedelta(seconds=1.5),
        ANCHOR + timedelta(seconds=3),
    ]


def test_an_interval_far_from_its_anchor_is_computed_not_stepped() -> None:
    millionth = ANCHOR + 1_000_000 * timedelta(seconds=7.5)
    started = time.perf_counter()
    assert fire_times(every(7.5), millionth, 2) == [
        ANCHOR + 1_000_001 * timedelta(seconds=7.5),
        ANCHOR + 1_000_002 * timedelta(seconds=7.5),
    ]
    assert fire_times(every(7.5), millionth - timedelta(microseconds=1), 1) == [millionth]
    assert time.perf_counter() - started < 0.1


def test_an_interval_counts_real_time_across_dst_changes() -> None:
    # Anchored at Berlin's midnight before spring-forward: 03:00 local does not exist, so fires
    # (every real hour) are at 01:00, 03:00, 04:00... of the wall clock.
    hourly = every(3600, anchor=datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN))
    fires = fire_times(hourly, datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN), 2)
    assert fires == [at("2026-03-29T03:00"), at("2026-03-29T04:00")]
    assert [fire.astimezone(BERLIN).hour for fire in fires] == [5, 6]


def test_no_fire_after_end_at() -> None:
    ended = every(60, end_at=ANCHOR + 3 * MINUTE)
    expected = [ANCHOR, ANCHOR + MINUTE, ANCHOR + 2 * MINUTE, ANCHOR + 3 * MINUTE]
    assert fire_times(ended, ANCHOR - SECOND, 10) == expected
    assert fire_times(ended, ANCHOR + 3 * MINUTE, 10) == []
    # An end in another zone: 03:00 in Berlin is 02:00 UTC in January.
    hourly = cron("0 * * * *", end_at=datetime(2026, 1, 1, 3, 0, tzinfo=BERLIN))
    assert fire_times(hourly, ANCHOR, 10) == [at("2026-01-01T01:00"), at("2026-01-01T02:00")]


def test_fire_times_need_an_aware_time() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        fire_times(every(60), datetime(2026, 1, 1), 1)


# Jitter


def test_jitter_is_zero_without_jitter_seconds() -> None:
    assert jitter("s-1", ANCHOR, 0) == timedelta(0)
    assert jitter("s-1", ANCHOR, 1e-7) == timedelta(0)  # below a microsecond


def test_jitter_is_deterministic_and_in_range() -> None:
    fires = [ANCHOR + k * MINUTE for k in range(1000)]
    offsets = [jitter("s-1", fire, 30) for fire in fires]
    assert offsets == [jitter("s-1", fire, 30) for fire in fires]
    assert all(timedelta(0) <= offset < timedelta(seconds=30) for offset in offsets)
    assert len(set(offsets)) > 990  # different across fire times
    assert min(offsets) < timedelta(seconds=1)
    assert max(offsets) > timedelta(seconds=29)
    # The instant counts, not how it is written; the schedule counts too.
    assert jitter("s-1", fires[5].astimezone(BERLIN), 30) == offsets[5]
    others = [jitter("s-2", fire, 30) for fire in fires]
    assert sum(mine == theirs for mine, theirs in zip(offsets, others, strict=True)) < 10
    # Pinned: processes of different versions, during a rolling upgrade, must agree.
    assert offsets[:2] == [timedelta(seconds=8.567725), timedelta(seconds=21.756564)]


def test_jitter_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="jitter_seconds"):
        jitter("s-1", ANCHOR, -1)
    with pytest.raises(ValueError, match="UTC offset"):
        jitter("s-1", datetime(2026, 1, 1), 30)


# Due


def test_nothing_is_due_between_fires() -> None:
    assert due(every(60), "s", ANCHOR, ANCHOR + 30 * SECOND, "skip") == Due(
        None, 0, None, None, ANCHOR + MINUTE
    )
    # Nor before last_considered.
    assert due(every(60), "s", ANCHOR + 5 * MINUTE, ANCHOR, "last") == Due(
        None, 0, None, None, ANCHOR + 6 * MINUTE
    )


@pytest.mark.parametrize("catch_up", ["skip", "last"])
def test_a_fire_runs_when_due(catch_up) -> None:
    expected = Due(ANCHOR + MINUTE, 0, None, None, ANCHOR + 2 * MINUTE)
    assert due(every(60), "s", ANCHOR, ANCHOR + MINUTE, catch_up) == expected
    assert due(every(60), "s", ANCHOR, ANCHOR + 80 * SECOND, catch_up) == expected


def test_skip_runs_the_latest_fire_within_the_grace_and_skips_the_rest() -> None:
    now = ANCHOR + 200 * SECOND  # fires at 60, 120, 180
    expected = Due(
        ANCHOR + 3 * MINUTE, 2, ANCHOR + MINUTE, ANCHOR + 2 * MINUTE, ANCHOR + 4 * MINUTE
    )
    assert due(every(60), "s", ANCHOR, now, "skip", grace_seconds=60) == expected
    # Several within the grace: still only the latest runs.
    assert due(every(60), "s", ANCHOR, now, "skip", grace_seconds=300) == expected


def test_skip_runs_nothing_when_every_due_fire_was_missed() -> None:
    now = ANCHOR + 200 * SECOND
    assert due(every(60), "s", ANCHOR, now, "skip", grace_seconds=10) == Due(
        None, 3, ANCHOR + MINUTE, ANCHOR + 3 * MINUTE, ANCHOR + 4 * MINUTE
    )


def test_last_runs_the_latest_fire_even_when_missed() -> None:
    now = ANCHOR + 200 * SECOND
    assert due(every(60), "s", ANCHOR, now, "last", grace_seconds=10) == Due(
        ANCHOR + 3 * MINUTE, 2, ANCHOR + MINUTE, ANCHOR + 2 * MINUTE, ANCHOR + 4 * MINUTE
    )


def test_a_week_down_with_an_every_second_interval_is_counted_exactly_and_quickly() -> None:
    week = 7 * 86_400
    now = ANCHOR + week * SECOND + timedelta(milliseconds=500)
    started = time.perf_counter()
    within_grace = due(every(1), "s", ANCHOR, now, "skip")
    all_missed = due(every(1), "s", ANCHOR, now, "skip", grace_seconds=0)
    last = due(every(1), "s", ANCHOR, now, "last", grace_seconds=0)
    assert time.perf_counter() - started < 0.1
    latest, following = ANCHOR + week * SECOND, ANCHOR + (week + 1) * SECOND
    assert within_grace == Due(latest, week - 1, ANCHOR + SECOND, latest - SECOND, following)
    assert all_missed == Due(None, week, ANCHOR + SECOND, latest, following)
    assert last == within_grace


def test_a_fire_is_due_only_once_its_jitter_has_passed() -> None:
    jittered = every(60, jitter_seconds=30)
    offset = jitter("s", ANCHOR + MINUTE, 30)
    assert offset > timedelta(0)
    due_at = ANCHOR + MINUTE + offset
    waiting = due(jittered, "s", ANCHOR, due_at - timedelta(microseconds=1), "skip")
    assert waiting == Due(None, 0, None, None, ANCHOR + MINUTE)  # next_fire is already past
    assert due(jittered, "s", ANCHOR, due_at, "skip") == Due(
        ANCHOR + MINUTE, 0, None, None, ANCHOR + 2 * MINUTE
    )


def test_jitter_widens_the_grace() -> None:
    # Missed: nominal time more than grace + jitter_seconds (60 + 30) before now.
    jittered = every(600, jitter_seconds=30)
    fire = ANCHOR + 10 * MINUTE
    assert due(jittered, "s", ANCHOR, fire + 89 * SECOND, "skip").fire == fire
    assert due(jittered, "s", ANCHOR, fire + 91 * SECOND, "skip") == Due(
        None, 1, fire, fire, fire + 10 * MINUTE
    )


def test_an_ended_schedule_has_no_next_fire() -> None:
    ended = every(60, end_at=ANCHOR + 2 * MINUTE)
    assert due(ended, "s", ANCHOR, ANCHOR + 1000 * SECOND, "last") == Due(
        ANCHOR + 2 * MINUTE, 1, ANCHOR + MINUTE, ANCHOR + MINUTE, None
    )
    assert due(ended, "s", ANCHOR + 2 * MINUTE, ANCHOR + 2000 * SECOND, "last") == Due(
        None, 0, None, None, None
    )


@pytest.mark.parametrize(
    ("schedule", "skips"),
    [
        (every(60, jitter_seconds=45), False),
        (cron("* * * * *", jitter_seconds=45), False),
        # A jitter longer than the gap between fires makes fires due together: the latest runs.
        (cron("*/2 * * * *", "Europe/Berlin", jitter_seconds=300), True),
    ],
    ids=["interval", "cron", "cron-jitter-over-gap"],
)
def test_polling_settles_every_fire_once_and_in_order(schedule: Timing, skips: bool) -> None:
    """The protocol of Due: carry fire, else last_skipped, over as the next last_considered."""
    considered, now, runs, skipped = ANCHOR, ANCHOR, [], 0
    while now < ANCHOR + timedelta(hours=2):
        now += 7 * SECOND
        result = due(schedule, "s", considered, now, "skip")
        if result.last_skipped is not None:
            assert result.first_skipped == fire_times(schedule, considered, 1)[0]
            skipped += result.skipped_count
            considered = result.last_skipped
        if result.fire is not None:
            assert result.fire + jitter("s", result.fire, schedule.jitter_seconds) <= now
            assert result.fire == fire_times(schedule, considered, 1)[0]
            runs.append(result.fire)
            considered = result.fire
        assert result.next_fire == fire_times(schedule, considered, 1)[0]
    every_fire = [fire for fire in fire_times(schedule, ANCHOR, 200) if fire <= considered]
    assert len(runs) + skipped == len(every_fire)
    assert (skipped > 0) == skips
    assert len(runs) > 20


def test_a_cron_schedule_after_a_day_down_is_counted_exactly() -> None:
    now = ANCHOR + timedelta(days=1, seconds=30)
    day = ANCHOR + timedelta(days=1)
    assert due(cron("* * * * *"), "s", ANCHOR, now, "last") == Due(
        day, 1439, ANCHOR + MINUTE, day - MINUTE, day + MINUTE
    )


def test_a_cron_schedule_after_months_down_stops_counting_but_finds_the_latest_fires() -> None:
    now = ANCHOR + timedelta(days=90, seconds=30)
    end = ANCHOR + timedelta(days=90)
    started = time.perf_counter()
    result = due(cron("* * * * *"), "s", ANCHOR, now, "last")
    assert time.perf_counter() - started < 2
    assert result == Due(end, SKIP_COUNT_LIMIT, ANCHOR + MINUTE, end - MINUTE, end + MINUTE)


DST_CHANGES = {
    "Europe/Berlin": (at("2026-03-29T01:00"), at("2026-10-25T01:00")),
    "America/New_York": (at("2026-03-08T07:00"), at("2026-11-01T06:00")),
}


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 * * * *", "*/20 1-3 * * *", "0 2,3 * * *"])
@pytest.mark.parametrize("zone", sorted(DST_CHANGES))
def test_the_search_past_the_count_limit_agrees_with_stepping(
    expression: str, zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timing, "SKIP_COUNT_LIMIT", 5)
    schedule = cron(expression, zone, end_at=DST_CHANGES[zone][-1] + timedelta(days=2))
    start = at("2026-02-20T00:00")
    every_fire = fire_times(schedule, start, 10_000)
    assert every_fire[-1] > DST_CHANGES[zone][-1] + timedelta(days=1)
    # Ends of the pause every 10 minutes, from 12 hours before to 12 hours after each change.
    for change in DST_CHANGES[zone]:
        for now in (change + k * 10 * MINUTE for k in range(-72, 73)):
            count = bisect.bisect_right(every_fire, now)
            result = due(schedule, "s", start, now, "last")
            assert result == Due(
                every_fire[count - 1], 5, every_fire[0], every_fire[count - 2], every_fire[count]
            )


@pytest.mark.parametrize("hours", [6, 7, 8, 30])
def test_the_latest_fires_just_past_the_count_limit(
    hours: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timing, "SKIP_COUNT_LIMIT", 5)
    hour = timedelta(hours=1)
    result = due(cron("0 * * * *"), "s", ANCHOR, ANCHOR + hours * hour + MINUTE, "last")
    assert result == Due(
        ANCHOR + hours * hour,
        5,
        ANCHOR + hour,
        ANCHOR + (hours - 1) * hour,
        ANCHOR + (hours + 1) * hour,
    )


def test_due_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="catch_up"):
        due(every(60), "s", ANCHOR, ANCHOR, "all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grace_seconds"):
        due(every(60), "s", ANCHOR, ANCHOR, "skip", grace_seconds=-1)
    with pytest.raises(ValueError, match="UTC offset"):
        due(every(60), "s", ANCHOR, datetime(2026, 1, 2), "skip")


# Checks of timing settings


def test_good_timings_have_no_problems() -> None:
    assert timing_problems("30 2 * * 1-5", None, "Europe/Berlin", None, 86_400) == []
    assert timing_problems("0 0 L * *", None, "UTC", ANCHOR, 0) == []
    assert timing_problems(None, 60, "America/New_York", ANCHOR, 59.9) == []


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (("0 * * * *", 60, "UTC", None, 0), "either a cron expression or an interval"),
        ((None, None, "UTC", None, 0), "either a cron expression or an interval"),
        (("61 * * * *", None, "UTC", None, 0), "'61 * * * *': Bad minute"),
        (("0 0 30 2 *", None, "UTC", None, 0), "'0 0 30 2 *': Bad day-of-month"),
        (("0 0 * * MON#6", None, "UTC", None, 0), "Bad day-of-week"),
        (("* * * *", None, "UTC", None, 0), "must have five fields"),
        (("0 0 2 * * *", None, "UTC", None, 0), "must have five fields"),
        (("9" * 5000 + " * * * *", None, "UTC", None, 0), "9...': a number is too long"),
        ((None, 0.5, "UTC", None, 0), "interval must be at least 1 second"),
        ((None, -60, "UTC", None, 0), "interval must be at least 1 second"),
        ((None, math.nan, "UTC", None, 0), "interval must be at least 1 second"),
        ((None, math.inf, "UTC", None, 0), "interval must be at least 1 second"),
        ((None, 60, "Mars/Olympus", None, 0), "unknown time zone 'Mars/Olympus'"),
        ((None, 60, "../../etc/passwd", None, 0), "unknown time zone"),
        ((None, 60, "/etc/localtime", None, 0), "unknown time zone"),
        ((None, 60, "Europe", None, 0), "unknown time zone"),
        ((None, 60, "", None, 0), "unknown time zone"),
        ((None, 60, "UTC", datetime(2026, 1, 1), 0), "end_at must have a UTC offset"),
        ((None, 60, "UTC", None, -1), "jitter must be 0 to 86400 seconds"),
        ((None, 60, "UTC", None, math.nan), "jitter must be 0 to 86400 seconds"),
        (("0 * * * *", None, "UTC", None, 86_401), "jitter must be 0 to 86400 seconds"),
        ((None, 60, "UTC", None, 60), "jitter must be shorter than the interval"),
    ],
)
def test_bad_timings_are_reported(settings: tuple[Any, ...], problem: str) -> None:
    problems = timing_problems(*settings)
    assert len(problems) == 1
    assert problem in problems[0]
    cron_expression, interval, zone, end_at, jitter_seconds = settings
    with pytest.raises(ValueError, match=re.escape(problem)):
        Timing(cron_expression, interval, ANCHOR, zone, end_at, jitter_seconds)


def test_a_timing_needs_an_aware_anchor() -> None:
    with pytest.raises(ValueError, match="anchor must have a UTC offset"):
        Timing(None, 60, datetime(2026, 1, 1))
