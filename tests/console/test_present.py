"""How the console words times and values."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType

from flowlog.console.present import (
    TASK_BADGES,
    Task,
    Waiting,
    duration,
    iso,
    limit_listed,
    limit_text,
    pretty_json,
    relative,
    shown_value,
    status_class,
    waiting_text,
)
from flowlog.workflow.admission import Waiting as LimitWait
from tests.console.histories import at


def test_relative_and_absolute_times() -> None:
    assert relative(at(0), at(2)) == "just now"
    assert relative(at(0), at(59)) == "59 s ago"
    assert relative(at(0), at(60 * 5 + 3)) == "5 min ago"
    assert relative(at(0), at(3600 * 26)) == "1 d ago"
    assert relative(at(90), at(0)) == "in 1 min"
    assert iso(at(1.5)) == "2026-11-29T12:00:01.500Z"


def test_durations_read_as_people_say_them() -> None:
    assert duration(0.0004) == "0 ms"
    assert duration(0.85) == "850 ms"
    assert duration(timedelta(seconds=2.44)) == "2.4 s"
    assert duration(185) == "3 min 5 s"
    assert duration(120) == "2 min"
    assert duration(3600 * 2 + 600) == "2 h 10 min"
    assert duration(86400 * 3 + 3600 * 4) == "3 d 4 h"


def test_values_and_statuses() -> None:
    assert (
        pretty_json(MappingProxyType({"b": 1, "a": [1]})) == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'
    )
    assert shown_value(None) == "(none)"
    assert shown_value("") == '""'
    assert shown_value("<b>") == "<b>"  # escaped by the template, not here
    assert shown_value({"k": [1, 2]}) == '{"k":[1,2]}'
    assert status_class("Not-run") == "st-not-run"


def test_a_waiting_node_says_what_it_waits_for_and_since_when() -> None:
    callback = Waiting("approval", "callback", since=at(0), deadline=at(86400))
    assert waiting_text(callback, at(7200)) == (
        "Waiting: approval (a person or a callback), for 2 h; deadline in 22 h"
    )
    assert waiting_text(callback, at(86400 + 300)) == (
        "Waiting: approval (a person or a callback), for 1 d; deadline passed 5 min ago"
    )
    no_deadline = Waiting("approval", "callback", since=at(0))
    assert waiting_text(no_deadline, at(95)) == (
        "Waiting: approval (a person or a callback), for 1 min 35 s"
    )
    timer = Waiting("coolDown", "timer", since=at(0), wake_at=at(3600))
    assert waiting_text(timer, at(2400)) == (
        "Waiting: coolDown (a timer), until 2026-11-29 13:00:00 UTC (in 20 min)"
    )


def test_a_task_is_waiting_offered_later_paused_held_or_lapsed() -> None:
    offered = Task("remote", "f1.2", offered_at=at(0))
    assert offered.state(at(5)) == "offered"
    assert Task("remote", "f1.2", offered_at=at(60)).state(at(5)) == "later"  # a next poll
    assert replace(offered, flow_running=False).state(at(5)) == "paused"
    held = replace(offered, worker="w-1", claimed_at=at(1), expires_at=at(31))
    assert held.state(at(30)) == "held"
    assert held.state(at(31)) == "lapsed"  # taken back as interrupted once a reactor sees it
    assert replace(held, flow_running=False).state(at(30)) == "held"  # the worker still has it
    assert set(TASK_BADGES) == {"offered", "later", "paused", "held", "lapsed"}


def test_a_flow_control_wait_says_how_many_are_ahead_or_when_it_starts() -> None:
    line = LimitWait("concurrency", "flow", "context.clusterId", "c-1", 3, 2, None)
    assert (
        limit_text(line, at(0)) == "Waiting: concurrency context.clusterId=c-1, 3 ahead (2 running)"
    )
    assert limit_listed(line, at(0)) == "waiting: concurrency clusterId=c-1, 3 ahead"
    node = LimitWait("concurrency", "node upload", "tenant", "t-1", 0, 5, None)
    assert limit_text(node, at(0)) == (
        "Waiting: concurrency tenant=t-1 of node upload, 0 ahead (5 running)"
    )
    rate = LimitWait("rate", "node upload", "context.region", "eu", 0, 0, at(90))
    assert limit_text(rate, at(0)) == (
        "Waiting: rate limit context.region=eu of node upload, starts at 2026-11-29 12:01:30 UTC "
        "(in 1 min)"
    )
    assert (
        limit_listed(rate, at(0)) == "waiting: rate limit region=eu of node upload, starts in 1 min"
    )
    # Its time came; a reactor has not taken it up yet.
    assert limit_text(rate, at(91)) == (
        "Waiting: rate limit context.region=eu of node upload, its start at 2026-11-29 12:01:30 "
        "UTC has come: due now"
    )
    assert limit_listed(rate, at(91)).endswith("of node upload, due now")


def test_a_flow_control_wait_shows_a_long_or_missing_value_and_an_unknown_key() -> None:
    long = LimitWait("concurrency", "flow", "bizId", "x" * 500, 1, 1, None)
    assert (
        limit_text(long, at(0)) == f"Waiting: concurrency bizId={'x' * 199}…, 1 ahead (1 running)"
    )
    assert limit_listed(long, at(0)) == f"waiting: concurrency bizId={'x' * 39}…, 1 ahead"
    missing = LimitWait("concurrency", "flow", "context.clusterId", "", 0, 1, None)
    assert limit_listed(missing, at(0)) == 'waiting: concurrency clusterId="", 0 ahead'
    # A definition this process does not know (yet): the limit is named without its key.
    unknown = LimitWait("concurrency", "flow", None, "c-1", 0, 1, None)
    assert limit_listed(unknown, at(0)) == "waiting: concurrency key=c-1, 0 ahead"
