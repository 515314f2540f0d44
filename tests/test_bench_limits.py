"""``flowlog bench limits`` at its smoke size: every flow finishes under the limit, and the
figures are computed from what was measured. What they say about speed is the benchmark's
business, not a test's."""

from __future__ import annotations

import pytest

from flowlog.bench import limits
from flowlog.bench.size import Size


def test_most_at_once_counts_overlaps_and_not_touching_ends() -> None:
    assert limits.most_at_once([]) == 0
    assert limits.most_at_once([(0, 2), (1, 3), (2, 4)]) == 2  # an end before a begin
    assert limits.most_at_once([(0, 10), (1, 2), (1.5, 3), (2.5, 4)]) == 3


@pytest.mark.slow
async def test_the_limited_run_never_exceeds_the_limit(server_url: str) -> None:
    report = await limits.run(server_url, size=Size.SMOKE, progress=False)
    figures = report.figures
    assert figures["flows"] == limits.SMOKE_FLOWS
    assert 1 <= figures["most_at_once_per_key_limited"] <= limits.LIMIT
    assert figures["flows_per_s_limited"] > 0
    assert figures["flows_per_s_unlimited"] > 0
    ratio = figures["flows_per_s_limited"] / figures["flows_per_s_unlimited"]
    assert figures["ratio_flows_limited_vs_unlimited"] == round(ratio, 3)
