"""When a failed delivery is tried again: exponential backoff with full jitter (each wait a
random time up to a doubling ceiling), so that many lanes failing together against one
receiver do not come back in step."""

from __future__ import annotations

import random

FIRST_SECONDS = 1.0
CAP_SECONDS = 3600.0
FLOOR_SECONDS = 0.05
"""No retry sooner than this: a receiver that fails at once is not hammered."""


def retry_delay(
    attempts: int,
    *,
    first: float = FIRST_SECONDS,
    cap: float = CAP_SECONDS,
    rand: random.Random | None = None,
) -> float:
    """Seconds until the next try after ``attempts`` failed tries (1 or more)."""
    exponent = min(max(attempts, 1) - 1, 62)  # past 2**62 the ceiling is the cap anyway
    ceiling = min(cap, first * 2.0**exponent)
    return max(FLOOR_SECONDS, (rand or random).uniform(0.0, ceiling))
