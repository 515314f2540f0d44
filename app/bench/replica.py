"""``flowlog bench replica``: reads on a streaming replica against reads on the primary.

The benchmark brings its own pair of servers (an embedded primary and a replica made from it
with ``pg_basebackup -R``, both on this machine, default durable settings), because
replication needs access a shared server does not give. On a scratch database, two ``flowlog
serve`` processes run in turn: one reading from the primary (the baseline), one reading from
the replica (FLOWLOG_READ_DATABASE_URL). Measured, by C clients on kept-alive connections:

- ``list`` and ``detail`` (as in ``bench http``) on each, after the same seeded flows ended;
- ``create_read``: a create, then a detail that presents the create's commit position
  (read-your-writes; the primary-only server sends none, as it needs none): pairs/s, and how
  many of the reads the replica answered;
- the replica's lag while ``create_start`` writes run through the replica-reading process:
  bytes of WAL not yet replayed and PostgreSQL's own ``replay_lag``, sampled every 20 ms.

Both servers share this machine's two cores: a replica here takes work off the primary, not
time off a request. See docs/benchmarks.md and docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from flowlog.bench.harness import Report, percentile, scratch_database, serve_process
from flowlog.bench.http import DEFINITION, FLOW_NAME, creator, until_finished
from flowlog.bench.requests import Phase, Request, expect_ok, run_phase
from flowlog.bench.size import Size
from flowlog.pgserver import EmbeddedPostgres
from flowlog.replicas.connect import until_replayed
from flowlog.replicas.position import HEADER

CLIENTS = 16
QUICK = {"seed": 300, "list": 1000, "detail": 1000, "create_read": 300, "writes": 600}
FULL = {"seed": 2000, "list": 6000, "detail": 6000, "create_read": 2000, "writes": 3000}
SMOKE = {"seed": 32, "list": 32, "detail": 32, "create_read": 32, "writes": 64}

LAG_SAMPLE = """
SELECT (pg_current_wal_insert_lsn() - replay_lsn)::bigint AS bytes,
       coalesce(extract(epoch FROM replay_lag), 0)::float8 AS seconds
FROM pg_stat_replication
"""


@contextlib.contextmanager
def primary_and_replica() -> Iterator[tuple[EmbeddedPostgres, EmbeddedPostgres]]:
    folder = Path(tempfile.mkdtemp(prefix="flbench-", dir="/tmp"))
    try:
        with EmbeddedPostgres(folder / "primary") as primary:
            replica = primary.replicate(folder / "replica")
            with replica:
                yield primary, replica
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    """``server_url`` is not used: the benchmark needs servers it may replicate."""
    counts = size.pick(FULL, QUICK, SMOKE)
    with primary_and_replica() as (primary, replica):
        async with scratch_database(primary.dsn()) as url:
            name = url.rsplit("/", 1)[1].split("?")[0]
            replica_url = replica.dsn(name)
            figures, rows = await _measure(url, replica_url, counts, progress)
    notes = [
        f"{CLIENTS} clients; an embedded primary and its streaming replica on this machine "
        "(the same two cores); `flowlog serve` reading from the primary, then one reading "
        "from the replica, on the same seeded flows.",
        "create_read: a create, then a detail presenting the create's Flowlog-Position.",
        "reads routed by the replica-reading process: "
        + ", ".join(f"{k[6:]} {v}" for k, v in sorted(figures.items()) if k.startswith("reads_")),
        f"replica lag while {figures['lag_writes_per_s']:.0f} creates/s were written: "
        f"{figures['lag_bytes_p50']:,} / {figures['lag_bytes_p99']:,} / "
        f"{figures['lag_bytes_max']:,} bytes of WAL (p50 / p99 / max), replay_lag "
        f"{figures['replay_lag_ms_p50']} / {figures['replay_lag_ms_p99']} / "
        f"{figures['replay_lag_ms_max']} ms ({figures['lag_samples']} samples).",
    ]
    header = ["operation", "reads on", "requests", "req/s", "p50 ms", "p99 ms", "vs primary"]
    return Report(
        "replica", header, rows, {"bench": "replica", "size": size.value, **figures}, notes
    )


async def _measure(
    url: str, replica_url: str, counts: dict[str, int], progress: bool
) -> tuple[dict[str, Any], list[list[Any]]]:
    figures: dict[str, Any] = {"clients": CLIENTS}
    rows: list[list[Any]] = []
    measured: dict[str, dict[str, Phase]] = {"primary": {}, "replica": {}}
    created: list[str] = []
    async with serve_process(url) as base, _session(base) as session:
        await expect_ok(session.post("/api/v1/workflow-definitions", json=DEFINITION))
        await run_phase(
            "replica", "seed", counts["seed"], CLIENTS, session, creator(created), progress
        )
        await until_finished(session, len(created))
        measured["primary"] = await _reads(session, created, counts, "primary", progress)
    async with asyncio.timeout(60):
        await until_replayed(url, replica_url)
    env = {"FLOWLOG_READ_DATABASE_URL": replica_url}
    async with serve_process(url, env=env) as base, _session(base) as session:
        measured["replica"] = await _reads(session, created, counts, "replica", progress)
        lag = await _lag_while_writing(url, session, counts["writes"], progress)
        routed = await _routed(session)
    for operation in ("list", "detail", "create_read"):
        baseline = measured["primary"][operation]
        for where in ("primary", "replica"):
            phase = measured[where][operation]
            p50, p99 = percentile(phase.latencies_ms, 0.5), percentile(phase.latencies_ms, 0.99)
            ratio = phase.per_s / baseline.per_s
            figures |= {
                f"{operation}_{where}_requests_per_s": round(phase.per_s, 1),
                f"{operation}_{where}_p50_ms": round(p50, 2),
                f"{operation}_{where}_p99_ms": round(p99, 2),
            }
            rows.append([operation, where, phase.requests, phase.per_s, p50, p99, round(ratio, 3)])
        figures[f"ratio_{operation}_replica_vs_primary"] = round(
            measured["replica"][operation].per_s / baseline.per_s, 3
        )
    figures |= lag | routed
    return figures, rows


@contextlib.asynccontextmanager
async def _session(base: str) -> AsyncIterator[aiohttp.ClientSession]:
    # No cookie jar: each read presents a position only when the phase gives one.
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(
        base, connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


async def _reads(
    session: aiohttp.ClientSession,
    created: list[str],
    counts: dict[str, int],
    where: str,
    progress: bool,
) -> dict[str, Phase]:
    rng = random.Random(20261130)

    async def list_flows(session: aiohttp.ClientSession, n: int) -> None:
        query = {"pageSize": "10"} if n % 2 else {"pageSize": "10", "bizId": f"biz-{n % 100}"}
        await expect_ok(session.get("/api/v1/workflow/", params=query))

    async def detail(session: aiohttp.ClientSession, n: int) -> None:
        await expect_ok(session.get(f"/api/v1/workflow/{rng.choice(created)}"))

    phases: dict[str, Phase] = {}
    requests: list[tuple[str, Request]] = [
        ("list", list_flows), ("detail", detail), ("create_read", _create_then_read),
    ]  # fmt: skip
    for name, request in requests:
        phases[name] = await run_phase(
            "replica", f"{name} ({where})", counts[name], CLIENTS, session, request, progress
        )
    return phases


async def _create_then_read(session: aiohttp.ClientSession, n: int) -> None:
    body = {"flowName": FLOW_NAME, "bizId": f"ryw-{n}", "bizType": "bench", "start": False}
    async with session.post("/api/v1/workflow/", json=body) as response:
        answer = await response.json()
        if response.status != 200:
            raise RuntimeError(f"create: {response.status} {answer}")
        # Sent only by a server with replicas: the primary-only baseline reads its own.
        position = response.headers.get(HEADER)
    flow_id = answer["data"]["workFlowId"]
    headers = {} if position is None else {HEADER: position}
    await expect_ok(session.get(f"/api/v1/workflow/{flow_id}", headers=headers))


async def _lag_while_writing(
    url: str, session: aiohttp.ClientSession, writes: int, progress: bool
) -> dict[str, Any]:
    samples: list[tuple[int, float]] = []
    conn = await asyncpg.connect(url)
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            row = await conn.fetchrow(LAG_SAMPLE)
            if row is not None:
                samples.append((row["bytes"], row["seconds"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.02)

    sampler = asyncio.create_task(sample())
    created: list[str] = []
    try:
        phase = await run_phase(
            "replica", "writes (lag)", writes, CLIENTS, session, creator(created), progress
        )
    finally:
        done.set()
        await sampler
        await conn.close()
    lag_bytes = [b for b, _ in samples]
    lag_ms = [s * 1000 for _, s in samples]
    return {
        "lag_writes_per_s": round(phase.per_s, 1),
        "lag_samples": len(samples),
        "lag_bytes_p50": percentile(lag_bytes, 0.5),
        "lag_bytes_p99": percentile(lag_bytes, 0.99),
        "lag_bytes_max": max(lag_bytes, default=0),
        "replay_lag_ms_p50": round(percentile(lag_ms, 0.5), 2),
        "replay_lag_ms_p99": round(percentile(lag_ms, 0.99), 2),
        "replay_lag_ms_max": round(max(lag_ms, default=0.0), 2),
    }


async def _routed(session: aiohttp.ClientSession) -> dict[str, Any]:
    """How the replica-reading process routed its reads, from its /metrics."""
    async with session.get("/metrics") as response:
        text = await response.text()
    routed: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "flowlog_reads_total":
                key = f"reads_{sample.labels['why']}"
                routed[key] = routed.get(key, 0) + int(sample.value)
    return routed
