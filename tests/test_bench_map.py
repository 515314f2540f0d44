"""``flowlog bench map`` at tiny sizes: its figures are those of the log it leaves behind (the
parents' streams, their children), and its report holds every key docs/benchmarks.md names.
What the figures say about speed is the benchmark's business, not a test's."""

from __future__ import annotations

import statistics

import asyncpg
import orjson
import pytest

from flowlog.bench import maps
from flowlog.bench.size import Size
from flowlog.eventstore import EventStore
from flowlog.workflow.streams import flow_stream

SMALL, LARGE = 4, 120
"""The larger one needs three batches at maxConcurrency 50."""
KEYS = (
    "children_per_s_1k", "children_per_s_10k", "map_seconds_1k", "map_seconds_10k",
    "independent_flows_per_s_1k", "independent_flows_per_s_10k", "parent_events_per_child_1k",
    "parent_events_per_child_10k", "ratio_time_10k_vs_1k", "ratio_children_vs_independent_flows",
    "ratio_children_vs_independent_flows_1k", "ratio_children_vs_independent_flows_10k",
)  # fmt: skip
CHILDREN = """SELECT count(*) FILTER (WHERE status = 'Finished') AS finished, count(*) AS made
              FROM workflows WHERE parent_id = $1"""


@pytest.mark.slow
async def test_the_figures_are_the_logs(database_url: str, pool: asyncpg.Pool) -> None:
    figures = await maps.measure(database_url, SMALL, LARGE, rounds=2)

    assert all(figures[key] > 0 for key in KEYS), figures
    assert figures["verify_differences"] == 0
    store = EventStore(pool)
    for label, count in (("1k", SMALL), ("10k", LARGE)):
        assert figures[f"children_{label}"] == count
        assert len(figures[f"map_seconds_{label}_each"]) == 2
        streams = []
        for parent in figures[f"parent_ids_{label}"]:
            stream = await store.read_stream(flow_stream(parent))
            assert stream[-1].type == "FlowFinished"
            started = [e.data for e in stream if e.type == "ChildrenStarted"]
            assert sum(batch["count"] for batch in started) == count
            assert max(batch["count"] for batch in started) <= maps.MAX_CONCURRENCY
            children = await pool.fetchrow(CHILDREN, parent)
            assert children is not None
            assert (children["made"], children["finished"]) == (count, count)
            streams.append(stream)
        longest = max(streams, key=len)
        assert figures[f"parent_events_{label}"] == len(longest)
        assert figures[f"parent_events_per_child_{label}"] == round(len(longest) / count, 3)
        started_batches = sum(e.type == "ChildrenStarted" for e in longest)
        assert figures[f"parent_children_started_{label}"] == started_batches
        # The seconds are rounded to the millisecond: a map of a few children takes tens of
        # them, so the rate is checked against the rounding's bounds, not a relative margin.
        seconds = figures[f"map_seconds_{label}"]
        per_s = figures[f"children_per_s_{label}"]
        assert (
            count / (seconds + 0.0005) - 0.1 <= per_s <= count / max(seconds - 0.0005, 1e-6) + 0.1
        )
        assert figures[f"map_recorded_seconds_{label}"] <= figures[f"map_seconds_{label}"]
    pairs = zip(figures["map_seconds_1k_each"], figures["map_seconds_10k_each"], strict=True)
    ratio = statistics.median(large / small for small, large in pairs)
    assert figures["ratio_time_10k_vs_1k"] == pytest.approx(ratio, rel=0.05)  # times rounded
    assert figures["ratio_children_vs_independent_flows"] == min(
        figures["ratio_children_vs_independent_flows_1k"],
        figures["ratio_children_vs_independent_flows_10k"],
    )


def test_the_report_has_every_key_and_says_the_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    figures = {key: 1.5 for key in KEYS} | {
        "bench": "map", "size": "quick", "children_1k": 200, "children_10k": 2000,
        "reactor_concurrency_limit": 32, "verify_differences": 0, "map_seconds_1k": 0.5,
        "map_seconds_10k": 5.0, "rounds": 3, "map_seconds_1k_each": [0.5, 0.4, 0.6],
        "map_seconds_10k_each": [5.0, 4.0, 6.0],
    }  # fmt: skip
    maps.report(figures, Size.QUICK).print(as_json=True)
    out = capsys.readouterr().out
    assert "--quick: 200 and 2000 instead of 1,000 and 10,000" in out
    assert "map of 2000: children/s" in out
    assert "5.00 / 4.00 / 6.00" in out
    printed = orjson.loads(out.strip().splitlines()[-1])
    assert set(KEYS) <= set(printed)
