"""``flowlog bench flows``: 3-node flows created, started and run to the end, in one process.

N flows of a 3-node sync definition with trivial executors are created and started (one append
each) by C concurrent clients while the reactor runs in the same process, as ``flowlog serve``
does. Measured:

- ``flows_per_s``: N / (first create -> last flow Finished);
- ``create_to_finished_p50_ms`` / ``p99``: from the create call to FlowFinished (database time);
- ``transition_p50_ms`` / ``p99``: from one executor's return to the next executor's call, in
  the executors themselves: what a node waits for its predecessor's outcome to be recorded;
- ``commits_per_flow``: committed transactions of the database during the run / N (every
  transaction: appends, claims, heartbeats, notifications, releases);
- ``appends_per_statement``: flows' appends per group-commit statement;
- ``python_cpu_ms_per_flow``: CPU time of this process (the engine, the clients, the
  executors) / N; ``other_cpu_ms_per_flow``: the rest of the machine's CPU time meanwhile
  (PostgreSQL, mostly) / N;
- ``verify_differences``: ``flowlog verify`` of the tables against the log afterwards (0);
- what a flow leaves behind (docs/scaling.md's capacity model): ``events_per_flow``,
  ``log_bytes_per_flow`` (the ``events`` table, TOAST included), ``log_index_bytes_per_flow``,
  ``projection_bytes_per_flow`` (``workflows`` and ``workflow_nodes`` with their indexes), and
  ``wal_bytes_per_flow`` (the server's WAL during the run / N: the whole cluster's, so measure
  on a quiet server).

The engine runs at its default settings (``ReactorSettings()``, the engine's pool), as
``flowlog serve`` does: ``reactor_concurrency_limit`` is the adaptive concurrency limit it settled
on (app/workflow/concurrency_limit.py). A second phase runs flows whose nodes sleep 200 ms
(``slow_...`` figures: app/bench/slow_flows.py), where the limit grows past the old fixed 32.

Baselines, in the same run: single-row INSERT commits per second by C writers on the same
server (``ratio_flows_vs_5_plain_commits`` compares flows/s with that rate / 5: flows that
would cost five plain commits each); and, when DBOS Transact is installed (``pip install
dbos``; not a dependency), its 3-step workflows per second on the same server, best of 1 and 4
caller threads (``ratio_flows_vs_dbos``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from flowlog.bench import dbos_baseline, slow_flows
from flowlog.bench.append import Q as BENCH_Q
from flowlog.bench.flow_clients import CLIENTS, create_and_finish
from flowlog.bench.harness import Report, percentile, scratch_database, timed
from flowlog.bench.size import Size
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, connect
from flowlog.projections.verify import verify
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.reactor_settings import ReactorSettings
from flowlog.workflow.streams import flow_stream

QUICK_FLOWS, FULL_FLOWS, SMOKE_FLOWS = 600, 3000, 40
PLAIN_COMMITS, SMOKE_PLAIN_COMMITS = 4000, 200
QUICK_DBOS_WORKFLOWS, FULL_DBOS_WORKFLOWS, SMOKE_DBOS_WORKFLOWS = 200, 1000, 20
FLOW_NAME = "bench-three-steps"

_COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
_WAL = "SELECT pg_current_wal_lsn()"
_WAL_SINCE = "SELECT pg_current_wal_lsn() - $1::pg_lsn"
_SIZES = """
SELECT (SELECT count(*) FROM events WHERE stream_id LIKE 'flow-%') AS events,
       pg_table_size('events') AS log_bytes, pg_indexes_size('events') AS log_index_bytes,
       pg_total_relation_size('workflows') + pg_total_relation_size('workflow_nodes')
         AS projection_bytes
"""


class _Timings:
    """When each executor was called and returned (perf_counter), by node id."""

    def __init__(self) -> None:
        self.called: dict[str, float] = {}
        self.returned: dict[str, float] = {}


def _definition(timings: _Timings) -> WorkflowDefinition:
    async def step(node: NodeHandle, ctx: FlowContext) -> None:
        timings.called[node.id] = time.perf_counter()
        timings.returned[node.id] = time.perf_counter()

    return WorkflowDefinition(
        FLOW_NAME,
        {
            "start": NodeDefinition("one", step, success="two"),
            "two": NodeDefinition("two", step, success="three"),
            "three": NodeDefinition("three", step),
        },
    )


async def _plain_commits_per_s(url: str, writers: int, commits: int) -> float:
    from flowlog.eventstore import create_pool

    pool = await create_pool(url, min_size=writers, max_size=writers)
    try:
        await pool.execute(BENCH_Q.create_plain_table)
        per_writer = commits // writers

        async def work(writer: int) -> None:
            for op in range(per_writer):
                await pool.execute(
                    BENCH_Q.plain_insert_one, f"plain-{writer}", op + 1, "T", {"op": op}, {}
                )

        seconds = await timed(writers, work)
        return per_writer * writers / seconds
    finally:
        await pool.close()


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    timings = _Timings()
    settings = ReactorSettings()
    async with scratch_database(server_url) as url:
        commits = size.pick(PLAIN_COMMITS, PLAIN_COMMITS, SMOKE_PLAIN_COMMITS)
        plain = await _plain_commits_per_s(url, CLIENTS, commits)
        registry = Registry([_definition(timings)])
        async with Engine(url, registry, reactor=settings) as engine:
            stats = await connect(url)
            try:
                commits_before = await stats.fetchval(_COMMITS)
                wal_before = await stats.fetchval(_WAL)
                cpu = _CpuMeter()
                created, seconds = await create_and_finish(engine, FLOW_NAME, flows, progress)
                python_cpu, other_cpu = cpu.read()
                await asyncio.sleep(1.2)  # backends report their commit counts within a second
                await stats.execute("SELECT pg_stat_clear_snapshot()")
                commits = await stats.fetchval(_COMMITS) - commits_before
                wal = float(await stats.fetchval(_WAL_SINCE, wal_before))
                await stats.execute("VACUUM (ANALYZE) events, workflows, workflow_nodes")
                sizes = await stats.fetchrow(_SIZES)
            finally:
                await stats.close()
            assert engine.reactor is not None
            settled = engine.reactor.limit.limit
            latencies = await _create_to_finished_ms(engine, created)
            lanes = (engine.service.flows.commits, engine.service.flows.background)
            checked = await verify(EventStore(engine.pool), PROJECTOR, progress=False)
    slow = await slow_flows.run(server_url, size=size, progress=progress)
    dbos = await dbos_baseline.run(
        server_url,
        workflows=size.pick(FULL_DBOS_WORKFLOWS, QUICK_DBOS_WORKFLOWS, SMOKE_DBOS_WORKFLOWS),
    )
    assert sizes is not None
    transitions = _transitions_ms(timings)
    flows_per_s = flows / seconds
    baseline = plain / 5
    figures: dict[str, Any] = {
        "bench": "flows",
        "size": size.value,
        "flows": flows,
        "clients": CLIENTS,
        "reactor_concurrency_limit": settled,
        "flows_per_s": round(flows_per_s, 1),
        "create_to_finished_p50_ms": round(percentile(latencies, 0.5), 2),
        "create_to_finished_p99_ms": round(percentile(latencies, 0.99), 2),
        "transition_p50_ms": round(percentile(transitions, 0.5), 3),
        "transition_p99_ms": round(percentile(transitions, 0.99), 3),
        "commits_per_flow": round(commits / flows, 2),
        "appends_per_statement": round(
            sum(lane.appends for lane in lanes) / max(sum(lane.batches for lane in lanes), 1), 2
        ),
        "python_cpu_ms_per_flow": round(python_cpu * 1000 / flows, 3),
        "other_cpu_ms_per_flow": round(other_cpu * 1000 / flows, 3),
        "verify_differences": len(checked.differences),
        "events_per_flow": round(sizes["events"] / flows, 2),
        "log_bytes_per_flow": round(sizes["log_bytes"] / flows),
        "log_index_bytes_per_flow": round(sizes["log_index_bytes"] / flows),
        "projection_bytes_per_flow": round(sizes["projection_bytes"] / flows),
        "wal_bytes_per_flow": round(wal / flows),
        "plain_commits_per_s": round(plain, 1),
        "baseline_flows_per_s": round(baseline, 1),
        "ratio_flows_vs_5_plain_commits": round(flows_per_s / baseline, 3),
        **slow,
    }
    rows = [
        ["flows/s", figures["flows_per_s"]],
        ["create -> Finished p50 ms", figures["create_to_finished_p50_ms"]],
        ["create -> Finished p99 ms", figures["create_to_finished_p99_ms"]],
        ["transition p50 ms", figures["transition_p50_ms"]],
        ["transition p99 ms", figures["transition_p99_ms"]],
        ["commits per flow", figures["commits_per_flow"]],
        ["appends per statement (group commit)", figures["appends_per_statement"]],
        ["this process's CPU ms per flow", figures["python_cpu_ms_per_flow"]],
        ["other CPU ms per flow (PostgreSQL...)", figures["other_cpu_ms_per_flow"]],
        ["verify differences", figures["verify_differences"]],
        ["events per flow", figures["events_per_flow"]],
        [
            "log bytes per flow (table / its indexes)",
            f"{figures['log_bytes_per_flow']} / {figures['log_index_bytes_per_flow']}",
        ],
        ["projection bytes per flow (tables and indexes)", figures["projection_bytes_per_flow"]],
        ["WAL bytes per flow", figures["wal_bytes_per_flow"]],
        ["plain INSERT commits/s (baseline)", figures["plain_commits_per_s"]],
        ["ratio flows/s vs plain commits/s / 5", figures["ratio_flows_vs_5_plain_commits"]],
        ["concurrency limit the reactor settled on", figures["reactor_concurrency_limit"]],
        ["200 ms executors: flows/s", slow["slow_flows_per_s"]],
        [
            "200 ms executors: concurrency limit at the end / peak / mean",
            f"{slow['slow_concurrency_limit']} / {slow['slow_peak_concurrency_limit']} / "
            f"{slow['slow_mean_concurrency_limit']}",
        ],
        [
            "200 ms executors: running at once, peak / mean",
            f"{slow['slow_peak_executors']} / {slow['slow_mean_executors']}",
        ],
        [
            "200 ms executors: flows/s the mean allows (mean / 0.6 s)",
            slow["slow_flows_per_s_by_executors"],
        ],
        ["200 ms executors: flows/s a fixed 32 allowed", slow["slow_fixed_32_flows_per_s"]],
    ]
    notes = [
        f"{flows} flows of 3 sync nodes, {CLIENTS} clients, the reactor in the same process "
        "at its default settings (an adaptive concurrency limit); then "
        f"{slow['slow_flows']} flows whose 3 nodes sleep 200 ms each."
    ]
    if dbos is None:
        notes.append("DBOS Transact is not installed (pip install dbos): no DBOS baseline.")
    else:
        figures.update(dbos)
        ratio = flows_per_s / dbos["dbos_best_workflows_per_s"]
        figures["ratio_flows_vs_dbos"] = round(ratio, 3)
        rows.append([f"DBOS {dbos['dbos_version']} workflows/s (baseline, best of 1 and 4 "
                     "threads)", dbos["dbos_best_workflows_per_s"]])  # fmt: skip
        rows.append(["ratio flows/s vs DBOS", figures["ratio_flows_vs_dbos"]])
    return Report("flows", ["figure", "value"], rows, figures, notes)


class _CpuMeter:
    """CPU seconds of this process, and of the rest of the machine, since it was made."""

    def __init__(self) -> None:
        self._process = time.process_time()
        self._machine = _machine_cpu_seconds()

    def read(self) -> tuple[float, float]:
        process = time.process_time() - self._process
        machine = _machine_cpu_seconds() - self._machine
        return process, max(0.0, machine - process)


def _machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (Linux /proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def _create_to_finished_ms(engine: Engine, flow_ids: list[str]) -> list[float]:
    latencies = []
    for flow_id in flow_ids:
        stored = await engine.service.store.read_stream(flow_stream(flow_id))
        latencies.append((stored[-1].recorded_at - stored[0].recorded_at).total_seconds() * 1000)
    return latencies


def _transitions_ms(timings: _Timings) -> list[float]:
    gaps = []
    for node_id, called in timings.called.items():
        flow_id, _, sequence = node_id.rpartition(".")
        previous = timings.returned.get(f"{flow_id}.{int(sequence) - 1}")
        if previous is not None:
            gaps.append((called - previous) * 1000)
    return gaps
