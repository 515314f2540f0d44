"""How much a benchmark does; apart from the harness so the command line's arguments name it
without loading what benchmarks run."""

from __future__ import annotations

import enum
from typing import TypeVar

T = TypeVar("T")


class Size(enum.Enum):
    """How much a benchmark does: FULL (the runs docs/benchmarks.md reports), QUICK (under a
    minute), SMOKE (the least that goes through every step and every figure: for tests, which
    check that a benchmark runs, not what it measures; its figures mean nothing)."""

    FULL = "full"
    QUICK = "quick"
    SMOKE = "smoke"

    def pick(self, full: T, quick: T, smoke: T) -> T:
        return full if self is Size.FULL else quick if self is Size.QUICK else smoke
