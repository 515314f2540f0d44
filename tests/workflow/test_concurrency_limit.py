"""The adaptive concurrency limit (app/workflow/concurrency_limit.py), fed by models of a
reactor: no database, no clock, the same samples give the same limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowlog.workflow.concurrency_limit import ConcurrencyLimit
from flowlog.workflow.reactor_settings import ReactorSettings

MS = 0.001


def run_model(
    limit: ConcurrencyLimit, samples: int, *, executor: float, knee: int, base: float = MS
) -> list[int]:
    """A reactor whose transitions take ``base`` until more than ``knee`` flows are in one,
    then longer in proportion (a saturated process: each one more waits for the others), and
    whose executors take ``executor`` seconds. Flows in flight are always the limit (there is
    always more work); those in a transition are their share of the cycle (Little's law).
    Returns the limit after each sample."""
    seen = []
    for _ in range(samples):
        flows = limit.limit
        latency = base
        for _ in range(20):  # the fixed point of latency and flows in a transition
            in_transition = flows * latency / (latency + executor)
            latency = base * max(1.0, in_transition / knee)
        in_executors = flows - in_transition
        limit.sample(latency, flows, max(1, round(in_transition)), round(in_executors))
        seen.append(limit.limit)
    return seen


def test_slow_executors_that_queue_on_nothing_take_the_limit_up() -> None:
    limit = ConcurrencyLimit(16, 4, 1000)
    seen = run_model(limit, 20_000, executor=0.2, knee=8)
    assert max(seen) > 300
    # The executors' own 200 ms is not read as queueing: the limit ends far above the old 32.
    assert seen[-1] > 300


def test_cpu_trivial_executors_keep_few_flows_in_flight() -> None:
    limit = ConcurrencyLimit(16, 4, 1000)
    seen = run_model(limit, 20_000, executor=0.0, knee=8)
    # Every flow is in a transition: the limit stays near the knee plus Vegas's few queued.
    assert max(seen[-5000:]) <= 8 + 12
    assert min(seen[-5000:]) >= 4


def test_the_limit_shrinks_when_latency_rises_with_load() -> None:
    limit = ConcurrencyLimit(500, 4, 1000)
    run_model(limit, 200, executor=0.0, knee=500)  # fast: 500 flows in a transition fit
    assert limit.limit >= 500
    seen = run_model(limit, 5_000, executor=0.0, knee=10)  # the machine got ten times busier
    assert seen[-1] < 50
    assert limit.last is not None
    assert limit.last.queued <= 2 * 6


def test_flows_that_wait_on_the_reactor_do_not_take_the_limit_up() -> None:
    limit = ConcurrencyLimit(32, 4, 1000)
    for _ in range(1000):
        # Never queued by the latency, but only 19 of 40 flows in their executors: the rest
        # wait on the reactor (a claim, a release, a turn of the loop).
        limit.sample(MS, 40, 5, 19)
    assert limit.limit == 32


def test_an_unused_limit_does_not_grow() -> None:
    limit = ConcurrencyLimit(40, 4, 1000)
    for _ in range(1000):
        limit.sample(MS, 3, 1, 2)  # 3 flows in flight of 40 allowed, never queued
    assert limit.limit == 40


def test_a_fixed_limit_never_moves() -> None:
    limit = ReactorSettings(concurrency=7).limit()
    assert limit.fixed
    run_model(limit, 1000, executor=0.2, knee=100)
    run_model(limit, 1000, executor=0.0, knee=1)
    assert limit.limit == 7


def test_adaptive_settings_start_at_the_initial_limit_within_their_bounds() -> None:
    assert ReactorSettings().limit().limit == 32
    assert ReactorSettings(max_concurrency=10).limit().limit == 10
    small = ReactorSettings(max_concurrency=2, min_concurrency=4).limit()
    assert (small.minimum, small.maximum, small.limit) == (2, 2, 2)


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="minimum <= maximum"):
        ConcurrencyLimit(5, 10, 4)
    with pytest.raises(ValueError, match="minimum <= maximum"):
        ConcurrencyLimit(5, 0, 4)


samples = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=10.0, allow_nan=False),
        st.integers(min_value=0, max_value=5000),
        st.integers(min_value=0, max_value=5000),
        st.integers(min_value=0, max_value=5000),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(
    samples=samples,
    bounds=st.tuples(st.integers(1, 50), st.integers(0, 500)),
    initial=st.integers(-10, 2000),
)
def test_the_limit_stays_within_its_bounds_and_is_deterministic(
    samples: list[tuple[float, int, int, int]], bounds: tuple[int, int], initial: int
) -> None:
    minimum, extra = bounds
    maximum = minimum + extra
    one, two = (
        ConcurrencyLimit(initial, minimum, maximum),
        ConcurrencyLimit(initial, minimum, maximum),
    )
    for seconds, in_flight, in_transition, executing in samples:
        one.sample(seconds, in_flight, in_transition, executing)
        two.sample(seconds, in_flight, in_transition, executing)
        assert minimum <= one.limit <= maximum
        assert one.limit == two.limit
    assert one.last == two.last
