"""``flowlog bench map``: a map node's children against as many independent flows.

Two sizes, a small and a ten times larger one (1,000 and 10,000 children; ``--quick`` 200
and 2,000; ``--smoke`` 10 and 100): for each, a parent flow whose one node maps a list of
that many elements onto children of a one-node noop definition (maxConcurrency 50), run by
the reactor in this process at its default settings, as ``flowlog serve`` runs it. Measured:

- ``children_per_s_1k`` / ``_10k``: children / (the parent's create+start -> the moment its
  FlowFinished is seen committed);
- ``ratio_time_10k_vs_1k``: the larger map's time / the smaller one's (10 is linear), the
  median of the rounds' ratios;
- ``parent_events_per_child_1k`` / ``_10k``: the parent's stream, read back from the log,
  / children (ChildrenStarted and ChildrenEnded batches, FlowCreated, FlowFinished...), for
  the parent with the most events;
- ``ratio_children_vs_independent_flows_1k`` / ``_10k``: children per second against
  independent flows per second: as many flows of the same noop definition, created and
  started over the Python API (``service.create(..., start=True)``) by 8 concurrent clients
  beside the map, measured the same way (first create -> last FlowFinished seen); the median
  of the rounds' ratios. ``ratio_children_vs_independent_flows`` is the lower of the two.

The run is made of rounds (3; ``--smoke`` one), each a map of each size and its baseline, the
map first or second by turns; the figures are medians, and each ratio the median of the rounds'
own: a map's time is a chain of commits one after the other, and moves with the machine's load
far more than a flood of independent flows does.

Before them, unmeasured, a warm-up of a few flows and a small map (the connections, the
prepared statements and the definitions' first use are not any size's cost).

"Seen": a counter of finished flows (``workflow_counts``, a few rows) read every 20 ms, the
same for both. The keys say 1k and 10k whatever the size; ``children_1k`` and
``children_10k`` say how many there were.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from tqdm import tqdm

from flowlog.bench.harness import Report, median, scratch_database
from flowlog.bench.size import Size
from flowlog.engine import Engine
from flowlog.eventstore import EventStore
from flowlog.projections.verify import verify
from flowlog.workflow.definition import NodeDefinition, NodeKind, Registry, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.fanout import Children
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.reactor_settings import ReactorSettings
from flowlog.workflow.streams import flow_stream

NOOP, MAP = "bench-noop", "bench-map"
MAX_CONCURRENCY = 50
CLIENTS = 8
"""Concurrent creators of the independent flows (as ``bench flows``)."""
SIZES = {Size.FULL: (1000, 10000), Size.QUICK: (200, 2000), Size.SMOKE: (10, 100)}
GOALS = {"ratio_time_10k_vs_1k": 12.0, "parent_events_per_child": 2.0,
         "ratio_children_vs_independent_flows": 0.8}  # fmt: skip
ROUNDS = {Size.FULL: 3, Size.QUICK: 3, Size.SMOKE: 1}
WARM_UP = 100
_SEEN_EVERY = 0.02
_FINISHED = "SELECT coalesce(sum(count), 0)::bigint FROM workflow_counts WHERE status = 'Finished'"
_PARENT_SPAN = """
SELECT extract(epoch FROM max(recorded_at) - min(recorded_at))::float8
FROM events WHERE stream_id = $1
"""


async def noop(node: NodeHandle, ctx: FlowContext) -> None:
    return None


EACH = NodeDefinition(
    "each",
    kind=NodeKind.MAP,
    children=Children(flow=NOOP, items="items", max_concurrency=MAX_CONCURRENCY),
)
DEFINITIONS = [
    WorkflowDefinition(NOOP, {"start": NodeDefinition("noop", noop)}),
    WorkflowDefinition(MAP, {"start": EACH}),
]


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    small, large = SIZES[size]
    async with scratch_database(server_url) as url:
        figures = await measure(url, small, large, rounds=ROUNDS[size], progress=progress)
    figures = {"bench": "map", "size": size.value, **figures}
    return report(figures, size)


async def measure(
    url: str, small: int, large: int, *, rounds: int = 1, progress: bool = False
) -> dict[str, Any]:
    """The figures of maps of ``small`` and ``large`` children on the (migrated) database of
    ``url``, each beside as many independent flows, ``rounds`` times; ``parent_ids_1k`` and
    ``parent_ids_10k`` name the parents, round by round."""
    settings = ReactorSettings()
    figures: dict[str, Any] = {
        "max_concurrency": MAX_CONCURRENCY,
        "clients": CLIENTS,
        "rounds": rounds,
    }
    async with Engine(url, Registry(DEFINITIONS), reactor=settings, migrate=False) as engine:
        warm_up = min(small, WARM_UP)
        await _independent(engine, warm_up, "warm-up", progress=False)
        await _map(engine, warm_up, "warm-up", progress=False)
        sizes = {"1k": small, "10k": large}
        runs: dict[str, _Runs] = {label: _Runs() for label in sizes}
        for n in range(rounds):
            for label, count in sizes.items():
                await runs[label].run(engine, count, f"{label}-{n}", n % 2 == 1, progress)
        for label, count in sizes.items():
            figures.update(await runs[label].figures(engine, label, count))
        checked = await verify(EventStore(engine.pool), PROJECTOR, progress=False)
        assert engine.reactor is not None
        figures["reactor_concurrency_limit"] = engine.reactor.limit.limit
    # Each round's own ratio: its two maps ran minutes apart at most, under about the same load.
    ratios = [t / s for s, t in zip(runs["1k"].maps, runs["10k"].maps, strict=True)]
    figures["ratio_time_10k_vs_1k"] = round(median(ratios), 2)
    figures["ratio_children_vs_independent_flows"] = min(
        figures["ratio_children_vs_independent_flows_1k"],
        figures["ratio_children_vs_independent_flows_10k"],
    )
    figures["verify_differences"] = len(checked.differences)
    return figures


class _Runs:
    """One size's maps and their baselines, round after round."""

    def __init__(self) -> None:
        self.maps: list[float] = []
        self.flows: list[float] = []
        self.parents: list[str] = []

    async def run(
        self, engine: Engine, count: int, tag: str, map_first: bool, progress: bool
    ) -> None:
        """A map and its baseline, the map first or second (turn about, so that a drift of the
        machine's load favours neither)."""
        if map_first:
            parent_id, map_s = await _map(engine, count, tag, progress)
            self.flows.append(await _independent(engine, count, tag, progress))
        else:
            self.flows.append(await _independent(engine, count, tag, progress))
            parent_id, map_s = await _map(engine, count, tag, progress)
        self.maps.append(map_s)
        self.parents.append(parent_id)

    async def figures(self, engine: Engine, label: str, count: int) -> dict[str, Any]:
        """Medians, the median of each round's ratio, and the parents' streams as logged."""
        # The parent with the most events (all have about as many): the bound that matters.
        streams = [await engine.service.store.read_stream(flow_stream(p)) for p in self.parents]
        longest = max(streams, key=len)
        types = Counter(event.type for event in longest)
        spans = [await engine.pool.fetchval(_PARENT_SPAN, flow_stream(p)) for p in self.parents]
        map_s, flow_s = median(self.maps), median(self.flows)
        ratios = [f / m for f, m in zip(self.flows, self.maps, strict=True)]
        return {
            f"children_{label}": count,
            f"map_seconds_{label}": round(map_s, 3),
            f"map_seconds_{label}_each": [round(s, 3) for s in self.maps],
            f"map_recorded_seconds_{label}": round(median(spans), 3),
            f"children_per_s_{label}": round(count / map_s, 1),
            f"independent_seconds_{label}": round(flow_s, 3),
            f"independent_seconds_{label}_each": [round(s, 3) for s in self.flows],
            f"independent_flows_per_s_{label}": round(count / flow_s, 1),
            f"parent_events_{label}": len(longest),
            f"parent_children_started_{label}": types["ChildrenStarted"],
            f"parent_children_ended_{label}": types["ChildrenEnded"],
            f"parent_events_per_child_{label}": round(len(longest) / count, 3),
            f"ratio_children_vs_independent_flows_{label}": round(median(ratios), 3),
            f"parent_ids_{label}": self.parents,
        }


async def _independent(engine: Engine, count: int, tag: str, progress: bool) -> float:
    """Seconds from the first create of ``count`` one-node flows to the last one's end seen."""
    service = engine.service
    before = await engine.pool.fetchval(_FINISHED)
    bar = tqdm(total=count, desc=f"{count} flows", unit="flow", disable=not progress)
    start = time.perf_counter()

    async def client(index: int) -> None:
        for n in range(index, count, CLIENTS):
            await service.create(f"flow-{tag}-{n}", "bench", NOOP, start=True)

    creating = asyncio.gather(*(client(i) for i in range(CLIENTS)))
    await _until_finished(engine, before + count, before, bar, creating)
    return time.perf_counter() - start


async def _map(engine: Engine, count: int, tag: str, progress: bool) -> tuple[str, float]:
    """The parent's id, and seconds from its create+start to its end seen."""
    before = await engine.pool.fetchval(_FINISHED)
    bar = tqdm(total=count, desc=f"map of {count}", unit="child", disable=not progress)
    context = {"items": list(range(count))}
    start = time.perf_counter()
    parent = await engine.service.create(f"map-{tag}", "bench", MAP, context=context,
                                         start=True)  # fmt: skip
    # The parent ends after its last child: every child and the parent, finished.
    await _until_finished(engine, before + count + 1, before, bar)
    return parent.flow_id, time.perf_counter() - start


async def _until_finished(
    engine: Engine, target: int, before: int, bar: tqdm[Any], creating: Any = None
) -> None:
    while True:
        finished = await engine.pool.fetchval(_FINISHED)
        bar.n = min(finished - before, bar.total)
        bar.refresh()
        if finished >= target:
            break
        if creating is not None and creating.done():
            creating.result()  # a client's failure ends the run
        await asyncio.sleep(_SEEN_EVERY)
    if creating is not None:
        await creating
    bar.close()


def report(figures: dict[str, Any], size: Size) -> Report:
    small, large = figures["children_1k"], figures["children_10k"]
    goal_time, goal_events, goal_ratio = GOALS.values()
    rows: list[list[Any]] = []
    for label, count in (("1k", small), ("10k", large)):
        rows += [
            [f"map of {count}: children/s", figures[f"children_per_s_{label}"], ""],
            [f"map of {count}: seconds (each round)",
             " / ".join(f"{t:.2f}" for t in figures[f"map_seconds_{label}_each"]), ""],
            [f"{count} independent flows/s (baseline)",
             figures[f"independent_flows_per_s_{label}"], ""],
            [f"ratio children/s vs flows/s ({count})",
             figures[f"ratio_children_vs_independent_flows_{label}"], f">= {goal_ratio}"],
            [f"parent's events per child ({count})",
             figures[f"parent_events_per_child_{label}"], f"<= {goal_events}"],
        ]  # fmt: skip
    rows += [
        [f"ratio time {large} vs {small}", figures["ratio_time_10k_vs_1k"], f"<= {goal_time}"],
        ["verify differences", figures["verify_differences"], "0"],
    ]
    notes = [
        f"Maps of {small} and {large} noop children (maxConcurrency {MAX_CONCURRENCY}), each "
        f"beside as many independent one-node flows ({CLIENTS} clients), the reactor in this "
        "process at its default settings (the adaptive concurrency limit ended at "
        f"{figures['reactor_concurrency_limit']}); "
        f"medians of {figures['rounds']} rounds."
    ]
    if size is not Size.FULL:
        notes.append(f"--{size.value}: {small} and {large} instead of 1,000 and 10,000 (the "
                     "keys still say 1k and 10k).")  # fmt: skip
    return Report("map", ["figure", "value", "goal"], rows, figures, notes)
