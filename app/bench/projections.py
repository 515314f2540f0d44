"""``flowlog bench projections``: rebuild speed, and list and detail latency at size.

1. Generate N flows' events (a million by default; 50,000 with ``--quick``) on the fast path:
   valid histories of a 3-node definition (most finished, some failed through the handler,
   running, stopped, canceled), COPY'd straight into the log of a scratch database.
2. Rebuild the projections from that log (``flowlog rebuild``), measuring events/s. Baseline
   of the same run: streaming the same events out of the database in stream order without
   folding or writing anything (``ratio_rebuild_vs_read``); then again with a job per core
   (``flowlog rebuild --jobs``, at least 2: ``ratio_rebuild_jobs_vs_read``).
3. Verify (``flowlog verify``) of the tables the jobs rebuilt: events/s, and no difference.
4. List (page 1 unfiltered, by status, by name and status, by tenant, by biz id, page 50 by
   offset, a deep page by cursor) and detail latency, p50/p99 over repeated calls. Baseline of
   the same run: a primary-key lookup of one flow row (``ratio_*_p50_vs_pk``).
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tqdm import tqdm

from flowlog.bench.harness import Report, percentile, scratch_database
from flowlog.bench.size import Size
from flowlog.engine import Engine
from flowlog.eventstore import EventStore, connect, create_pool
from flowlog.projections.bulk import Q as BQ
from flowlog.projections.reads import Cursor, ListFilter, list_workflows
from flowlog.projections.rebuild import rebuild
from flowlog.projections.verify import verify
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.streams import FLOW_STREAM

FULL_FLOWS = 1_000_000
QUICK_FLOWS = 50_000
SMOKE_FLOWS = 300
SAMPLES = 200
FLOW_NAMES = ("backup", "restore", "scaleOut", "upgrade")
STATUSES = ("Finished", "Error", "Processing", "Stopped", "Canceled", "Initializing")
TENANTS = 20
_CHUNK_FLOWS = 20_000
_COLUMNS = ("stream_id", "version", "type", "data", "metadata", "recorded_at")
_META = {"actor": "bench", "schema_version": 1}
_PK = "SELECT id, status FROM workflows WHERE id = $1"


async def _noop(node: NodeHandle, ctx: FlowContext) -> None:
    return None


def definitions() -> list[WorkflowDefinition]:
    """The definitions of the generated flows (four names, the same three steps)."""
    return [
        WorkflowDefinition(
            name,
            {
                "start": NodeDefinition("prepare", _noop, success="two", fail="fail"),
                "two": NodeDefinition("transfer", _noop, success="three", fail="fail"),
                "three": NodeDefinition("finish", _noop, fail="fail"),
                "fail": NodeDefinition("cleanup", _noop),
            },
        )
        for name in FLOW_NAMES
    ]


def _history(
    n: int, rng: random.Random, versions: dict[str, str], start: datetime
) -> list[tuple[Any, ...]]:
    """The events of flow ``n``: valid for the fold, in the shapes the service writes."""
    flow_id = f"{n:08d}-{rng.getrandbits(64):016x}"
    name = FLOW_NAMES[n % len(FLOW_NAMES)]
    stream = FLOW_STREAM + flow_id
    fate = rng.choices(STATUSES, weights=(70, 8, 8, 5, 5, 4))[0]
    at = start + timedelta(seconds=n * 2.5)
    tenant = f"tenant-{n % TENANTS}"
    events: list[tuple[str, dict[str, Any]]] = [
        ("FlowCreated", {
            "flow_id": flow_id, "name": name, "biz_id": f"cluster-{n % 50_000}",
            "biz_type": "cluster" if n % 3 else "host", "definition_version": versions[name],
            "tenant_id": tenant,
            "context": {"traceId": f"t-{n}", "userId": "bench", "tenantId": tenant},
        }),
    ]  # fmt: skip
    if fate != "Initializing":
        events.append(("FlowStarted", {}))
    keys = [("start", "prepare", "two"), ("two", "transfer", "three"), ("three", "finish", None)]
    steps = {"Finished": 3, "Error": 1, "Processing": 2, "Stopped": 1, "Canceled": 1}.get(fate, 0)
    for sequence, (key, node, following) in enumerate(keys[:steps], start=1):
        node_id = f"{flow_id}.{sequence}"
        events.append(("NodeStarted", {"node_id": node_id, "key": key, "name": node,
                                       "kind": "sync", "attempt": 1}))  # fmt: skip
        if fate == "Processing" and sequence == steps:
            break  # still running
        if fate == "Error":
            events.append(("NodeFailed", {
                "node_id": node_id, "error_code": 40109, "error_message": "RuntimeError: no disk",
                "result": "RuntimeError: no disk\n", "parameters": None, "context_changes": {},
                "context_removed": [], "will_retry": False, "retry_at": None, "pause": False,
                "next": "fail",
            }))  # fmt: skip
            handler = {"node_id": f"{flow_id}.2", "key": "fail", "name": "cleanup",
                       "kind": "sync", "attempt": 1}  # fmt: skip
            events.append(("NodeStarted", handler))
            events.append(("NodeSucceeded", _success(f"{flow_id}.2", None)))
            events.append(("FlowFailed", {"error_code": 40109,
                                          "error_message": "RuntimeError: no disk"}))  # fmt: skip
            break
        events.append(("NodeSucceeded", _success(node_id, following)))
    if fate == "Finished":
        events.append(("FlowFinished", {}))
    elif fate == "Stopped":
        events.append(("FlowStopped", {"reason": "maintenance"}))
    elif fate == "Canceled":
        events.append(("CancelRequested", {"reason": "not needed"}))
        events.append(("FlowCanceled", {"reason": "not needed", "node_id": None}))
    return [
        (stream, version, kind, data, _META, at + timedelta(milliseconds=version * 40))
        for version, (kind, data) in enumerate(events, start=1)
    ]


def _success(node_id: str, following: str | None) -> dict[str, Any]:
    return {"node_id": node_id, "result": "Completed.\n", "parameters": None,
            "context_changes": {}, "context_removed": [], "next": following}  # fmt: skip


async def generate_log(
    conn: Any, registry: Registry, flows: int, rng: random.Random, progress: bool
) -> int:
    """Appends the histories of ``flows`` flows of ``registry``'s definitions (COPY, in
    chunks); returns the number of events. The flows end in every status, as in production."""
    versions = {d.name: d.version for d in registry.latest()}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    bar = tqdm(total=flows, desc="generate", unit="flow", unit_scale=True, disable=not progress)
    events = 0
    for first in range(0, flows, _CHUNK_FLOWS):
        records = [
            record
            for n in range(first, min(flows, first + _CHUNK_FLOWS))
            for record in _history(n, rng, versions, start)
        ]
        await conn.copy_records_to_table("events", records=records, columns=_COLUMNS)
        events += len(records)
        bar.update(min(_CHUNK_FLOWS, flows - first))
    bar.close()
    return events


async def generated_log(url: str, flows: int, rng: random.Random, progress: bool) -> int:
    """Records the definitions of the generated flows in the database of ``url`` and appends
    the histories of ``flows`` flows; returns the number of events."""
    registry = Registry(definitions())
    async with Engine(url, registry, run_reactor=False):
        pass  # records the definitions (and their projection) in the log
    conn = await connect(url)
    try:
        events = await generate_log(conn, registry, flows, rng, progress)
        await conn.execute("ANALYZE events")
        return events
    finally:
        await conn.close()


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    rng = random.Random(20261128)
    figures: dict[str, Any] = {"bench": "projections", "size": size.value, "flows": flows}
    async with scratch_database(server_url) as url:
        generated = time.perf_counter()
        events = await generated_log(url, flows, rng, progress)
        conn = await connect(url)
        try:
            figures["events"] = events
            figures["generate_seconds"] = round(time.perf_counter() - generated, 1)
            figures["read_events_per_s"] = round(await _read_rate(conn), 0)
        finally:
            await conn.close()
        pool = await create_pool(url, min_size=2, max_size=4)
        try:
            report = await rebuild(EventStore(pool), PROJECTOR, progress=progress)
            figures["rebuild_events_per_s"] = round(report.events_per_s, 0)
            figures["rebuild_seconds"] = round(report.seconds, 1)
            figures["rebuild_swap_ms"] = round(report.swap_seconds * 1000, 1)
            figures["ratio_rebuild_vs_read"] = round(
                report.events_per_s / figures["read_events_per_s"], 3
            )
            # Again with a job per core (`flowlog rebuild --jobs`); verify checks its tables.
            jobs = figures["rebuild_jobs"] = max(2, os.cpu_count() or 2)
            report = await rebuild(
                EventStore(pool), PROJECTOR, progress=progress, jobs=jobs, url=url
            )
            figures["rebuild_jobs_events_per_s"] = round(report.events_per_s, 0)
            figures["ratio_rebuild_jobs_vs_read"] = round(
                report.events_per_s / figures["read_events_per_s"], 3
            )
            await pool.execute("ANALYZE workflows; ANALYZE workflow_nodes")
            await _latencies(pool, rng, flows, figures)
            checked_at = time.perf_counter()
            checked = await verify(EventStore(pool), PROJECTOR, progress=progress)
            seconds = time.perf_counter() - checked_at
            figures["verify_events_per_s"] = round(checked.events / seconds, 0)
            figures["verify_differences"] = len(checked.differences)
        finally:
            await pool.close()
    return _report(figures)


async def _read_rate(conn: Any) -> float:
    """The baseline: events streamed out in stream order, nothing else done with them."""
    started = time.perf_counter()
    count = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for _ in conn.cursor(BQ.stream_events, "flow-", "flow.", prefetch=5000):
            count += 1
    return count / (time.perf_counter() - started)


async def sample_flow_ids(pool: Any) -> list[str]:
    """Up to 1,000 flow ids from a 1 % sample of the table's pages (or, for a table of so few
    pages that the sample has none, its first flows)."""
    sampled = await pool.fetch("SELECT id FROM workflows TABLESAMPLE SYSTEM (1) LIMIT 1000")
    rows = sampled or await pool.fetch("SELECT id FROM workflows LIMIT 1000")
    return [row["id"] for row in rows]


async def _latencies(pool: Any, rng: random.Random, flows: int, figures: dict[str, Any]) -> None:
    ids = await sample_flow_ids(pool)
    deep = await list_workflows(pool, ListFilter(), page_size=10, page=1)
    deep_cursor = Cursor(deep.rows[-1].created_at - timedelta(days=200), "")
    cases: dict[str, Any] = {
        "pk": lambda: pool.fetchrow(_PK, rng.choice(ids)),
        "list": lambda: list_workflows(pool, ListFilter()),
        "list_status": lambda: list_workflows(pool, ListFilter(status="Error")),
        "list_name_status": lambda: list_workflows(
            pool, ListFilter(name="restore", status="Processing")
        ),
        "list_tenant": lambda: list_workflows(pool, ListFilter(tenant_id="tenant-7")),
        "list_biz_id": lambda: list_workflows(
            pool, ListFilter(biz_id=f"cluster-{rng.randrange(min(flows, 50_000))}")
        ),
        "list_page_50": lambda: list_workflows(pool, ListFilter(), page=50),
        "list_deep_cursor": lambda: list_workflows(pool, ListFilter(), after=deep_cursor),
        "detail": lambda: _detail(pool, rng.choice(ids)),
    }  # fmt: skip
    for name, call in cases.items():
        await call()  # warm the plan and the cache
        samples = []
        for _ in range(SAMPLES):
            started = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - started) * 1000)
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        figures[f"{name}_p50_ms"] = round(p50, 3)
        figures[f"{name}_p99_ms"] = round(p99, 3)
    for name in cases:
        if name != "pk":
            figures[f"ratio_{name}_p50_vs_pk"] = round(
                figures[f"{name}_p50_ms"] / figures["pk_p50_ms"], 2
            )


async def _detail(pool: Any, flow_id: str) -> Any:
    from flowlog.projections.reads import get_nodes, get_workflow, node_names

    info = await get_workflow(pool, flow_id)
    assert info is not None
    await get_nodes(pool, flow_id)
    return await node_names(pool, info.definition_version)


def _report(figures: dict[str, Any]) -> Report:
    jobs = figures["rebuild_jobs"]
    rows: list[list[Any]] = [
        ["events generated", figures["events"]],
        ["rebuild events/s", figures["rebuild_events_per_s"]],
        ["read-only events/s (baseline)", figures["read_events_per_s"]],
        ["ratio rebuild / read", figures["ratio_rebuild_vs_read"]],
        [f"rebuild --jobs {jobs} events/s", figures["rebuild_jobs_events_per_s"]],
        [f"ratio rebuild --jobs {jobs} / read", figures["ratio_rebuild_jobs_vs_read"]],
        [
            "rebuild seconds (swap ms)",
            f"{figures['rebuild_seconds']} ({figures['rebuild_swap_ms']})",
        ],
    ]
    for key in sorted(k for k in figures if k.endswith("_p50_ms")):
        name = key.removesuffix("_p50_ms")
        rows.append(
            [f"{name} p50 / p99 ms", f"{figures[key]:.2f} / {figures[name + '_p99_ms']:.2f}"]
        )
    return Report(
        "projections",
        ["figure", "value"],
        rows,
        figures,
        [
            f"{figures['flows']:,} flows; latencies over {SAMPLES} calls each; "
            "pk = primary-key lookup of one flow row."
        ],
    )
