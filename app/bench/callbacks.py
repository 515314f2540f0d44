"""``flowlog bench callbacks``: what flows waiting on callbacks cost, and how fast callbacks
and timers move flows on, in one ``flowlog serve`` at its default settings.

Three measurements on a scratch database, each against a baseline in the same run:

1. **N flows waiting on callbacks** (1,000): a ``noop`` node, a callback node (no deadline),
   a ``noop`` node, created over HTTP; once every one has recorded ``NodeWaiting``, over a
   window of W seconds: the process's CPU share and RSS and the database's transactions/s
   (``xact_commit + xact_rollback`` of the scratch database), against the same process idle
   (no flow at all) over W seconds just before. The flows must hold no ``flow_work`` row.
2. **Callback to next node**: some of them completed by their token over HTTP
   (``POST /api/v1/workflow/callback``), first by one client pausing PACE before each (each
   meets an idle engine), then M by CLIENTS clients back to back; from ``time.time()`` just
   before the request to the ``recorded_at`` of the next node's ``NodeStarted`` (the
   database's ``statement_timestamp()`` of that append: same machine, same clock), split at
   the completion's own append (``CallbackReceived``). Also the request's round trip,
   against ``GET /healthz`` (the HTTP stack alone) just before, and the process's CPU per
   completed callback (the request, the next node, the flow's end).
3. **Timer fire delay**: K flows whose first node is a timer waiting until a time spread over
   a few seconds (the context's ``wakeAt``); from that time to the ``recorded_at`` of the
   timer node's ``NodeSucceeded``.

``flowlog verify`` checks the tables afterwards.

PostgreSQL's statistics lag: a backend that went idle less than a second after its last
report holds its counts up to 10 s (PGSTAT_IDLE_INTERVAL). So the bench waits a settle time
longer than that before each window: the window counts what happened in it, not the tail of
what came before.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from flowlog.bench import callbacks_flows
from flowlog.bench.callback_statements import statements_per_completion
from flowlog.bench.callbacks_flows import (
    CALLBACK_FLOW,
    CALLBACK_SEQUENCE,
    TIMER_FLOW,
    TIMER_SEQUENCE,
)
from flowlog.bench.harness import Report, percentile, process_cpu_seconds, scratch_database, served
from flowlog.bench.requests import Phase, Request, expect_ok, run_phase
from flowlog.bench.size import Size
from flowlog.eventstore import EventStore, create_pool
from flowlog.projections.verify import verify
from flowlog.workflow.callbacks import CallbackTokens
from flowlog.workflow.projection import PROJECTOR

QUICK = {"flows": 1000, "window": 10.0, "callbacks": 50, "paced": 25, "timers": 50,
         "lead": 3.0, "spread": 2.0, "settle": 11.0, "counted": 15}  # fmt: skip
FULL = {"flows": 1000, "window": 30.0, "callbacks": 200, "paced": 100, "timers": 200,
        "lead": 5.0, "spread": 5.0, "settle": 11.0, "counted": 30}  # fmt: skip
SMOKE = {"flows": 30, "window": 1.0, "callbacks": 8, "paced": 4, "timers": 5,
         "lead": 2.0, "spread": 1.0, "settle": 0.5, "counted": 5}  # fmt: skip
"""``settle``: longer than PostgreSQL's PGSTAT_IDLE_INTERVAL (10 s), so that earlier
transactions are counted before a window (SMOKE's figures mean nothing anyway)."""
CLIENTS = 4
"""Concurrent clients completing callbacks (and asking /healthz, the baseline)."""
CREATE_CLIENTS = 16
HEALTHZ_REQUESTS = 200
PACE = 0.05
"""The paced client's pause before each callback: the last flow has ended by then."""

_DATABASE = """
SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database
        WHERE datname = current_database()) AS transactions,
       (SELECT sum(autovacuum_count + autoanalyze_count)::bigint FROM pg_stat_all_tables)
       AS autovacuum
"""
_WAITING = "SELECT count(*) FROM events WHERE type = 'NodeWaiting' AND stream_id LIKE 'flow-%'"
_WORK_ROWS = "SELECT count(*) FROM flow_work WHERE definition_name = $1"
_AT = "substr(stream_id, 6) AS flow_id, extract(epoch FROM recorded_at)::float8 AS at"
_NEXT_STARTED = f"""
SELECT {_AT} FROM events
WHERE type = 'NodeStarted' AND stream_id = ANY($1::text[])
  AND data ->> 'node_id' = ANY($2::text[])
"""
_NEXT_STARTED_COUNT = """
SELECT count(*) FROM events
WHERE type = 'NodeStarted' AND stream_id = ANY($1::text[])
  AND data ->> 'node_id' = ANY($2::text[])
"""
_RECEIVED = f"SELECT {_AT} FROM events WHERE type = 'CallbackReceived' AND stream_id = ANY($1)"
_TIMERS_FIRED = """
SELECT count(*) FROM events
WHERE type = 'NodeSucceeded' AND stream_id = ANY($1::text[])
  AND data ->> 'node_id' = ANY($2::text[])
"""
_TIMER_DELAYS = """
SELECT extract(epoch FROM fired.recorded_at)::float8 - (w.context ->> 'wakeAt')::float8 AS delay,
       extract(epoch FROM waited.recorded_at)::float8 > (w.context ->> 'wakeAt')::float8 AS late
FROM workflows AS w
JOIN events AS fired ON fired.stream_id = 'flow-' || w.id AND fired.type = 'NodeSucceeded'
     AND fired.data ->> 'node_id' = w.id || '.' || $2::text
JOIN events AS waited ON waited.stream_id = 'flow-' || w.id AND waited.type = 'NodeWaiting'
WHERE w.name = $1
"""


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    settings = size.pick(FULL, QUICK, SMOKE)
    flows, window, settle = int(settings["flows"]), settings["window"], settings["settle"]
    figures: dict[str, Any] = {
        "bench": "callbacks",
        "size": size.value,
        "flows": flows,
        "window_s": window,
        "clients": CLIENTS,
        "cores": os.cpu_count(),
    }
    async with scratch_database(server_url) as url:
        args = ("--definitions", callbacks_flows.__name__)
        async with served(url, *args) as (base, process):
            pool = await create_pool(url, max_size=4)
            # One connection of its own for the statistics: its own counts are known (below).
            stats = await asyncpg.connect(url)
            connector = aiohttp.TCPConnector(limit=CREATE_CLIENTS)
            try:
                async with aiohttp.ClientSession(base, connector=connector) as session:
                    await stats.fetchrow(_DATABASE)  # prepared before any window
                    await asyncio.sleep(settle)
                    idle = await _measure(process.pid, stats, window)
                    created = await _create(session, CALLBACK_FLOW, flows, {}, progress)
                    await _until(pool, _WAITING, (), flows, within=600)
                    await asyncio.sleep(settle)
                    waiting = await _measure(process.pid, stats, window)
                    figures["waiting_flows"] = await pool.fetchval(_WAITING)
                    figures["waiting_work_rows"] = await pool.fetchval(_WORK_ROWS, CALLBACK_FLOW)
                    paced = int(settings["paced"])
                    completed = created[: 1 + paced + int(settings["callbacks"])]
                    figures |= await _callbacks(
                        session, pool, process.pid, completed, paced, progress
                    )
                    figures |= await _timers(session, pool, settings, progress)
                    checked = await verify(EventStore(pool), PROJECTOR, progress=False)
            finally:
                await stats.close()
                await pool.close()
        # After the server has stopped: an engine of its own in this process, so that every
        # statement it sends is counted.
        figures |= await statements_per_completion(url, int(settings["counted"]))
    figures |= {
        "idle_cpu_share": round(idle["cpu_s"] / window, 4),
        "waiting_cpu_share": round(waiting["cpu_s"] / window, 4),
        "idle_rss_mb": idle["rss_mb"],
        "waiting_rss_mb": waiting["rss_mb"],
        "idle_transactions_per_s": round(idle["transactions"] / window, 2),
        "waiting_transactions_per_s": round(waiting["transactions"] / window, 2),
        "idle_autovacuum_runs": idle["autovacuum"],
        "waiting_autovacuum_runs": waiting["autovacuum"],
        "verify_differences": len(checked.differences),
    }
    figures["ratio_cpu_waiting_vs_idle"] = round(
        figures["waiting_cpu_share"] / max(figures["idle_cpu_share"], 1e-4), 2
    )
    figures["ratio_transactions_waiting_vs_idle"] = round(
        figures["waiting_transactions_per_s"] / max(figures["idle_transactions_per_s"], 0.01), 2
    )
    return _report(figures, settings)


def _report(figures: dict[str, Any], settings: dict[str, float]) -> Report:
    def pair(key: str) -> str:
        return f"{figures[f'idle_{key}']} / {figures[f'waiting_{key}']}"

    def pct(key: str) -> str:
        return f"{figures[f'{key}_p50_ms']} / {figures[f'{key}_p99_ms']}"

    rows = [
        ["flows waiting on a callback", figures["waiting_flows"]],
        ["their flow_work rows", figures["waiting_work_rows"]],
        ["CPU share of the process, idle / waiting", pair("cpu_share")],
        ["ratio CPU waiting vs idle", figures["ratio_cpu_waiting_vs_idle"]],
        ["database transactions/s, idle / waiting", pair("transactions_per_s")],
        ["ratio transactions waiting vs idle", figures["ratio_transactions_waiting_vs_idle"]],
        ["autovacuum runs (vacuum, analyze), idle / waiting", pair("autovacuum_runs")],
        ["RSS MB, idle / waiting", pair("rss_mb")],
        [f"{CLIENTS} clients: callbacks completed per s", figures["callbacks_per_s"]],
        [
            f"{CLIENTS} clients: callback to next node started, p50 / p99 ms",
            pct("callback_to_next_node"),
        ],
        ["  request sent to completion's append, p50 / p99 ms", pct("callback_to_append")],
        ["  completion's append to next node's, p50 / p99 ms", pct("append_to_next_node")],
        [f"{CLIENTS} clients: callback request, p50 / p99 ms", pct("callback_request")],
        [f"{CLIENTS} clients: GET /healthz, p50 ms (baseline)", figures["healthz_p50_ms"]],
        ["ratio callback request vs healthz (p50)", figures["ratio_callback_request_vs_healthz"]],
        [
            "statements per completion, to the next node's start (median / min / max)",
            f"{figures['statements_per_completion']} / {figures['statements_per_completion_min']}"
            f" / {figures['statements_per_completion_max']}",
        ],
        [f"{CLIENTS} clients: serve CPU ms per callback", figures["cpu_ms_per_callback"]],
        ["paced: callback to next node started, p50 / p99 ms", pct("paced_callback_to_next_node")],
        ["  request sent to completion's append, p50 / p99 ms", pct("paced_callback_to_append")],
        ["  completion's append to next node's, p50 / p99 ms", pct("paced_append_to_next_node")],
        ["paced: callback request, p50 / p99 ms", pct("paced_callback_request")],
        ["paced: serve CPU ms per callback", figures["paced_cpu_ms_per_callback"]],
        [
            "the process's first callback: request / to next node, ms",
            f"{figures['first_callback_request_ms']} / {figures['first_callback_to_next_node_ms']}",
        ],
        [
            "timer fire delay, p50 / p99 / max ms",
            f"{figures['timer_delay_p50_ms']} / {figures['timer_delay_p99_ms']} / "
            f"{figures['timer_delay_max_ms']}",
        ],
        ["timers that began waiting after their time", figures["timer_waits_recorded_late"]],
        ["verify differences", figures["verify_differences"]],
    ]
    window = figures["window_s"]
    tick = os.sysconf("SC_CLK_TCK")
    notes = [
        f"{figures['flows']} flows waiting on a callback in one `flowlog serve` (default "
        f"settings), measured over {window:.0f} s against the same process idle over "
        f"{window:.0f} s just before. Completed over HTTP: "
        f"{figures['paced_callbacks_completed']} by one client, one every {PACE * 1000:.0f} "
        "ms (paced: each meets an idle engine), then "
        f"{figures['callbacks_completed']} by {CLIENTS} clients. {figures['timer_flows']} "
        f"timers due over {settings['spread']:.0f} s. Latencies end at an event's recorded_at "
        "(the database's clock, on the client's machine).",
        f"CPU time is counted in ticks of {1000 / tick:.0f} ms: over {window:.0f} s one tick is "
        f"a CPU share of {1 / tick / window:.4f}, so shares this small compare to a tick or two.",
    ]
    return Report("callbacks", ["figure", "value"], rows, figures, notes)


async def _create(
    session: aiohttp.ClientSession,
    flow_name: str,
    count: int,
    contexts: dict[int, dict[str, Any]],
    progress: bool,
) -> list[str]:
    """Creates and starts ``count`` flows over HTTP; their ids, in order."""
    ids: dict[int, str] = {}

    async def create(session: aiohttp.ClientSession, n: int) -> None:
        body = {
            "flowName": flow_name,
            "bizId": f"{flow_name}-{n}",
            "bizType": flow_name,
            "context": contexts.get(n, {}),
            "start": True,
        }
        ids[n] = (await expect_ok(session.post("/api/v1/workflow/", json=body)))["workFlowId"]

    name = f"create {flow_name}"
    await run_phase("callbacks", name, count, CREATE_CLIENTS, session, create, progress)
    return [ids[n] for n in range(count)]


async def _callbacks(
    session: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    pid: int,
    flow_ids: list[str],
    paced: int,
    progress: bool,
) -> dict[str, Any]:
    """Completes the callbacks of ``flow_ids``: the first alone (the process's first: it reads
    the tokens' secret, and its code paths are cold), the next ``paced`` by one client, one
    each PACE s (each meets an idle engine), the rest by CLIENTS clients back to back; how
    long until each next node started."""
    tokens = CallbackTokens(pool)
    token = {f: await tokens.token(f"{f}.{CALLBACK_SEQUENCE}", "") for f in flow_ids}
    # The token the bench computes is the one the flow's detail shows whoever may see it.
    detail = await expect_ok(session.get(f"/api/v1/workflow/{flow_ids[0]}"))
    if detail["waiting"]["callbackToken"] != token[flow_ids[0]]:
        raise RuntimeError("the computed callback token is not the flow's")

    async def healthz(session: aiohttp.ClientSession, n: int) -> None:
        await expect_ok(session.get("/healthz"))

    first, _ = await _complete(session, pool, flow_ids[:1], token, 1, 0.0, progress=False)
    health = await _phase("healthz", HEALTHZ_REQUESTS, CLIENTS, session, healthz, progress)
    figures: dict[str, Any] = {
        "first_callback_request_ms": round(first["callback_request"][0], 2),
        "first_callback_to_next_node_ms": round(first["callback_to_next_node"][0], 2),
        "callbacks_completed": len(flow_ids) - 1 - paced,
        "paced_callbacks_completed": paced,
    }
    for prefix, ids, clients, pause in (
        ("paced_", flow_ids[1 : 1 + paced], 1, PACE),
        ("", flow_ids[1 + paced :], CLIENTS, 0.0),
    ):
        cpu = process_cpu_seconds(pid)
        timings, seconds = await _complete(session, pool, ids, token, clients, pause, progress)
        if not pause:
            figures["callbacks_per_s"] = round(len(ids) / seconds, 1)
        cpu_ms = (process_cpu_seconds(pid) - cpu) * 1000
        figures[f"{prefix}cpu_ms_per_callback"] = round(cpu_ms / len(ids), 2)
        for name, values in timings.items():
            figures[f"{prefix}{name}_p50_ms"] = round(percentile(values, 0.5), 2)
            figures[f"{prefix}{name}_p99_ms"] = round(percentile(values, 0.99), 2)
        figures[f"{prefix}callback_to_next_node_max_ms"] = round(
            max(timings["callback_to_next_node"]), 2
        )
    figures["healthz_p50_ms"] = round(percentile(health.latencies_ms, 0.5), 2)
    figures["ratio_callback_request_vs_healthz"] = round(
        figures["callback_request_p50_ms"] / figures["healthz_p50_ms"], 2
    )
    return figures


async def _complete(
    session: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    flow_ids: list[str],
    token: dict[str, str],
    clients: int,
    pause: float,
    progress: bool,
) -> tuple[dict[str, list[float]], float]:
    """Completes the callbacks of ``flow_ids`` by ``clients`` clients, each pausing ``pause``
    s before each request. Timings in ms: the request's round trip, and from just before it
    to the completion's append (``CallbackReceived``) and to the next node's
    ``NodeStarted``; and the seconds the requests took."""
    sent: dict[str, float] = {}
    round_trips: list[float] = []

    async def complete(session: aiohttp.ClientSession, n: int) -> None:
        flow_id = flow_ids[n]
        body = {"token": token[flow_id], "status": "success", "result": "bench"}
        await asyncio.sleep(pause)
        sent[flow_id] = time.time()
        begun = time.perf_counter()
        await expect_ok(session.post("/api/v1/workflow/callback", json=body))
        round_trips.append((time.perf_counter() - begun) * 1000)

    name = "callback (paced)" if pause else f"callback ({clients} clients)"
    requests = await _phase(name, len(flow_ids), clients, session, complete, progress)
    streams = [f"flow-{flow_id}" for flow_id in flow_ids]
    next_nodes = [f"{flow_id}.{CALLBACK_SEQUENCE + 1}" for flow_id in flow_ids]
    await _until(pool, _NEXT_STARTED_COUNT, (streams, next_nodes), len(flow_ids), within=60)
    received = {r["flow_id"]: r["at"] for r in await pool.fetch(_RECEIVED, streams)}
    started = {r["flow_id"]: r["at"] for r in await pool.fetch(_NEXT_STARTED, streams, next_nodes)}
    timings = {
        "callback_request": round_trips,
        "callback_to_append": [(received[f] - sent[f]) * 1000 for f in flow_ids],
        "append_to_next_node": [(started[f] - received[f]) * 1000 for f in flow_ids],
        "callback_to_next_node": [(started[f] - sent[f]) * 1000 for f in flow_ids],
    }
    return timings, requests.seconds


async def _phase(
    name: str,
    count: int,
    clients: int,
    session: aiohttp.ClientSession,
    request: Request,
    progress: bool,
) -> Phase:
    """``count`` requests by ``clients`` clients back to back."""
    return await run_phase("callbacks", name, count, clients, session, request, progress)


async def _timers(
    session: aiohttp.ClientSession, pool: asyncpg.Pool, settings: dict[str, float], progress: bool
) -> dict[str, Any]:
    """K timer flows due at known times spread over ``spread`` s from ``lead`` s on; from each
    time to its timer node's outcome."""
    count, lead, spread = int(settings["timers"]), settings["lead"], settings["spread"]
    first = time.time() + lead
    contexts = {n: {"wakeAt": first + spread * n / count} for n in range(count)}
    flow_ids = await _create(session, TIMER_FLOW, count, contexts, progress)
    streams = [f"flow-{flow_id}" for flow_id in flow_ids]
    nodes = [f"{flow_id}.{TIMER_SEQUENCE}" for flow_id in flow_ids]
    await _until(pool, _TIMERS_FIRED, (streams, nodes), count, within=lead + spread + 60)
    rows = await pool.fetch(_TIMER_DELAYS, TIMER_FLOW, str(TIMER_SEQUENCE))
    delays = [row["delay"] * 1000 for row in rows]
    return {
        "timer_flows": count,
        "timer_delay_p50_ms": round(percentile(delays, 0.5), 2),
        "timer_delay_p99_ms": round(percentile(delays, 0.99), 2),
        "timer_delay_max_ms": round(max(delays), 2),
        "timer_waits_recorded_late": sum(1 for row in rows if row["late"]),
    }


async def _until(
    pool: asyncpg.Pool, query: str, args: tuple[Any, ...], count: int, *, within: float
) -> None:
    deadline = time.monotonic() + within
    while await pool.fetchval(query, *args) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {count} after {within:.0f} s: {query}")
        await asyncio.sleep(0.2)


async def _measure(pid: int, stats: asyncpg.Connection, seconds: float) -> dict[str, float]:
    """The process's CPU seconds, the database's transactions and autovacuum's runs over
    ``seconds``; RSS at the end."""
    cpu = process_cpu_seconds(pid)
    before = await stats.fetchrow(_DATABASE)
    await asyncio.sleep(seconds)
    after = await stats.fetchrow(_DATABASE)
    assert before is not None
    assert after is not None
    return {
        "cpu_s": process_cpu_seconds(pid) - cpu,
        "rss_mb": _rss_mb(pid),
        # The first read is a transaction of its own, reported within the window (idle after
        # it, the connection reports within 10 s); the second one's is not counted yet.
        "transactions": after["transactions"] - before["transactions"] - 1,
        # Autovacuum's runs on the database's tables: their transactions are counted too.
        "autovacuum": after["autovacuum"] - before["autovacuum"],
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
