"""``flowlog bench activity``: the console's Activity page query at a million flows.

1. Generate N flows (a million by default; 50,000 with ``--quick``) straight in SQL
   (``generate_series``): each flow's row in ``workflows`` (20 tenants) and seven events in
   the log, the flows' events interleaved by hundreds as concurrent flows' are. Actors as in
   production: the flow's create and start by one of its tenant's keys, people (OIDC),
   tokens or schedules, its five node and end events by one of four reactors (71 % of the log).
2. Time the page's statement (``flowlog.console.activity.activity``, 50 rows) for: one actor
   of a tenant, filtered by that tenant (what a tenant's viewer asks most; the target is a
   p99 under 50 ms), the same half way down the log (an older page), a tenant alone, no
   filter, a reactor in a tenant, and another tenant's actor (nothing to find: the bounded
   walk). Baseline of the same run: the plain primary-key read of the log's newest 50 events
   (``ratio_*_p50_vs_pk``).
3. Without ``events_actor_idx`` (dropped in a transaction rolled back after): one actor and
   tenant, and a retired key (its events all far back), walking the log's primary key instead
   (the walk unbounded, as a page without the index would need), a few samples.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tqdm import tqdm

from flowlog.bench.harness import Report, percentile, scratch_database
from flowlog.bench.size import Size
from flowlog.console.activity import ActivityQuery, activity
from flowlog.eventstore import connect, create_pool

FULL_FLOWS = 1_000_000
QUICK_FLOWS = 50_000
SMOKE_FLOWS = 2_000
TENANTS = 20
EVENTS_PER_FLOW = 7
_CHUNK = 25_000
_PK = (
    "SELECT position, recorded_at, stream_id, type, metadata FROM events "
    "ORDER BY position DESC LIMIT 50"
)

# Flow n: tenant n % 20; its creator by (n / 20) % 20: 10 of 20 a key, 3 a person, 1 a
# token, 6 a schedule (but the first 2,000 flows': a key retired since, whose events are all
# at the far end of the log); its other events by reactor n % 4.
_FLOWS = """
INSERT INTO workflows (id, name, biz_id, biz_type, status, tenant_id, definition_version,
                       context, created_at, updated_at, stream_version)
SELECT md5(n::text)::uuid::text, 'backup', 'cluster-' || n % 50000, 'cluster', 'Finished',
       'tenant-' || n % 20, 'bench', '{}', t, t + interval '1 second', 7
FROM generate_series($1::bigint, $2::bigint) n,
     LATERAL (SELECT timestamptz '2026-01-01' + n * interval '2 seconds' AS t) at
"""
_EVENTS = """
INSERT INTO events (stream_id, version, type, data, metadata, recorded_at)
SELECT 'flow-' || md5(n::text)::uuid::text, v,
       (ARRAY['FlowCreated', 'FlowStarted', 'NodeStarted', 'NodeSucceeded', 'NodeStarted',
              'NodeSucceeded', 'FlowFinished'])[v],
       '{}'::jsonb,
       jsonb_build_object('actor', CASE
           WHEN v > 2 THEN 'reactor:host-' || n % 4
           WHEN n < 2000 THEN 'key:tenant-' || n % 20 || '-retired'
           WHEN (n / 20) % 20 < 10 THEN 'key:tenant-' || n % 20 || '-ci'
           WHEN (n / 20) % 20 < 13 THEN 'oidc:person-' || n % 20 || '-' || (n / 400) % 3
           WHEN (n / 20) % 20 < 14 THEN 'token:tenant-' || n % 20 || '-ops'
           ELSE 'schedule:nightly-' || n % 20 END,
         'trace_id', md5(n::text || v)),
       timestamptz '2026-01-01' + n * interval '2 seconds' + v * interval '100 ms'
FROM generate_series($1::bigint, $2::bigint) n, generate_series(1, 7) v
ORDER BY n / 100, v, n
"""


async def _generate(url: str, flows: int, progress: bool) -> None:
    conn = await connect(url)
    bar = tqdm(total=flows, desc="generate", unit="flow", unit_scale=True, disable=not progress)
    try:
        for first in range(0, flows, _CHUNK):
            last = min(flows, first + _CHUNK) - 1
            async with conn.transaction():
                await conn.execute(_FLOWS, first, last)
                await conn.execute(_EVENTS, first, last)
            bar.update(last - first + 1)
        await conn.execute("ANALYZE events; ANALYZE workflows")
    finally:
        bar.close()
        await conn.close()


async def _timed(call: Callable[[], Awaitable[Any]], samples: int) -> tuple[float, float]:
    await call()  # the plan and the cache warm
    took = []
    for _ in range(samples):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    return percentile(took, 0.5), percentile(took, 0.99)


def _query(**given: Any) -> ActivityQuery:
    return ActivityQuery.model_validate({"pageSize": 50, **given})


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    flows = size.pick(FULL_FLOWS, QUICK_FLOWS, SMOKE_FLOWS)
    samples = size.pick(300, 100, 5)
    rng = random.Random(20261130)
    figures: dict[str, Any] = {"bench": "activity", "size": size.value, "flows": flows,
                               "events": flows * EVENTS_PER_FLOW, "samples": samples}  # fmt: skip
    async with scratch_database(server_url) as url:
        started = time.perf_counter()
        await _generate(url, flows, progress)
        figures["generate_seconds"] = round(time.perf_counter() - started, 1)
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            middle = flows * EVENTS_PER_FLOW // 2

            def mine() -> tuple[str, str]:
                tenant = rng.randrange(TENANTS)
                actor = rng.choice([f"key:tenant-{tenant}-ci", f"oidc:person-{tenant}-1",
                                    f"token:tenant-{tenant}-ops"])  # fmt: skip
                return actor, f"tenant-{tenant}"

            def actor_tenant(before: int | None = None) -> Awaitable[Any]:
                actor, tenant = mine()
                return activity(pool, _query(actor=actor, before=before), tenant)

            cases: dict[str, Callable[[], Awaitable[Any]]] = {
                "pk": lambda: pool.fetch(_PK),
                "actor_tenant": actor_tenant,
                "actor_tenant_older": lambda: actor_tenant(middle),
                "retired_actor_tenant": lambda: activity(
                    pool, _query(actor="key:tenant-5-retired"), "tenant-5"
                ),
                "tenant": lambda: activity(pool, _query(), f"tenant-{rng.randrange(TENANTS)}"),
                "everything": lambda: activity(pool, _query(), None),
                "reactor_tenant": lambda: activity(
                    pool, _query(actor=f"reactor:host-{rng.randrange(4)}"), "tenant-3"
                ),
                "other_tenants_actor": lambda: activity(
                    pool, _query(actor="key:tenant-3-ci"), "tenant-4"
                ),
            }
            bar = tqdm(total=len(cases) + 1, desc="measure", unit="case", disable=not progress)
            for name, call in cases.items():
                p50, p99 = await _timed(call, samples)
                figures[f"{name}_p50_ms"], figures[f"{name}_p99_ms"] = round(p50, 3), round(p99, 3)
                bar.update(1)
            await _without_index(pool, mine, min(samples, 10), figures)
            bar.update(1)
            bar.close()
        finally:
            await pool.close()
    for name in cases:
        if name != "pk":
            figures[f"ratio_{name}_p50_vs_pk"] = round(
                figures[f"{name}_p50_ms"] / figures["pk_p50_ms"], 2
            )
    figures["ratio_actor_tenant_without_vs_with_index"] = round(
        figures["actor_tenant_without_index_p50_ms"] / figures["actor_tenant_p50_ms"], 1
    )
    figures["ratio_retired_actor_tenant_without_vs_with_index"] = round(
        figures["retired_actor_tenant_without_index_p50_ms"]
        / figures["retired_actor_tenant_p50_ms"],
        1,
    )
    names = [*cases, "actor_tenant_without_index", "retired_actor_tenant_without_index"]
    return _report(figures, names)


async def _without_index(
    pool: Any, mine: Callable[[], tuple[str, str]], samples: int, figures: dict[str, Any]
) -> None:
    """The page's statement for one actor and tenant as it runs without the index."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("DROP INDEX events_actor_idx")
            for name, pick, count in (
                ("actor_tenant", mine, samples),
                ("retired_actor_tenant", lambda: ("key:tenant-5-retired", "tenant-5"),
                 max(1, samples // 3)),
            ):  # fmt: skip

                def call(pick: Callable[[], tuple[str, str]] = pick) -> Awaitable[Any]:
                    actor, tenant = pick()
                    return activity(conn, _query(actor=actor), tenant, examined=2**62)

                p50, p99 = await _timed(call, count)
                figures[f"{name}_without_index_p50_ms"] = round(p50, 3)
                figures[f"{name}_without_index_p99_ms"] = round(p99, 3)
            raise _RolledBack  # the index comes back with the rollback
    except _RolledBack:
        pass


class _RolledBack(Exception):
    pass


def _report(figures: dict[str, Any], names: list[str]) -> Report:
    rows = [
        (name, figures[f"{name}_p50_ms"], figures[f"{name}_p99_ms"],
         figures.get(f"ratio_{name}_p50_vs_pk", "-"))
        for name in names
    ]  # fmt: skip
    notes = [
        f"{figures['flows']:,} flows, {figures['events']:,} events (generated in "
        f"{figures['generate_seconds']} s); 50 rows a page; ratio = p50 / the primary-key read's."
    ]
    return Report("activity", ("query", "p50 ms", "p99 ms", "ratio vs pk"), rows, figures, notes)
