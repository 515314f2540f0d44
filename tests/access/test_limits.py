"""What bounds the writes a refused caller can cause: failed log-ins per address, and one
refusal event per caller and route a window (the rest counted into the next)."""

from __future__ import annotations

from flowlog.access.limiter import Coalescer, FailureLimit
from flowlog.logs import _shown


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_record_a_window_per_key_and_the_folded_ones_counted() -> None:
    clock = Clock()
    refusals = Coalescer(10.0, clock=clock)
    assert refusals.admit("viewer") == 0
    assert [refusals.admit("viewer") for _ in range(5)] == [None] * 5
    assert refusals.admit("other") == 0  # each caller its own window
    clock.now += 10
    assert refusals.admit("viewer") == 5  # recorded, with the five folded since
    assert refusals.admit("viewer") is None


def test_memory_stays_bounded_under_a_spray_of_keys() -> None:
    refusals = Coalescer(10.0, most_keys=100)
    for n in range(10_000):
        refusals.admit(n)
    assert len(refusals._last) == 100
    limit = FailureLimit(most_addresses=100)
    for n in range(10_000):
        limit.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(limit._failures) == 100


def test_an_address_waits_after_ten_failures_a_minute() -> None:
    clock = Clock()
    limit = FailureLimit(clock=clock)
    for _ in range(10):
        assert limit.blocked("a") == 0
        limit.failed("a")
    assert limit.blocked("a") > 0
    assert limit.blocked("b") == 0
    clock.now += 60
    assert limit.blocked("a") == 0


def test_a_value_with_control_characters_cannot_start_a_log_line() -> None:
    assert _shown("/api/v1/workflow") == "/api/v1/workflow"
    shown = _shown("/x\n2026-12-06 INFO forged")
    assert "\n" not in shown
    assert "\\n" in shown
    assert "\t" not in _shown("a\tb")
