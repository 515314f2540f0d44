"""``flowlog bench append``: appends per second against plain INSERTs, in the same run.

For 1, 4 and 16 concurrent writers and appends of 1 and 10 events, the same number of
operations is issued three ways through asyncpg, alternating in three rounds (the median
counts) so that drift on a noisy machine hits all of them alike:

- ours: ``EventStore.append`` with an exact expected version (a new stream every 20 appends),
  with the coalesced post-commit NOTIFY running and a listener receiving it;
- plain: one INSERT of the same rows into a table with the same columns and only a primary key
  (a single-row INSERT, or one multi-row INSERT for 10 events);
- plain + NOTIFY (1-event appends): the single-row INSERT with a NOTIFY in its transaction, to
  show what a notification in every append would cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
from tqdm import tqdm

from flowlog.bench.harness import Report, median, scratch_database, timed
from flowlog.bench.size import Size
from flowlog.eventstore import (
    EventStore,
    Expect,
    Listener,
    NewEvent,
    Notifier,
    connect,
    create_pool,
)
from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class BenchQueries:
    create_plain_table: str
    plain_insert_one: str
    plain_insert_many: str
    plain_insert_one_notify: str
    server_version: str


Q = load_queries(BenchQueries, "bench")

WRITERS = (1, 4, 16)
BATCHES = (1, 10)
STREAM_LENGTH = 20  # appends per stream before a writer moves to a new one
VARIANTS = ("ours", "plain", "plain_notify")

Op = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    ops: dict[int, int]  # writers -> operations per variant and round


QUICK = Plan(rounds=3, ops={1: 600, 4: 1500, 16: 3000})
FULL = Plan(rounds=3, ops={1: 4000, 4: 10000, 16: 16000})
SMOKE = Plan(rounds=1, ops={1: 20, 4: 40, 16: 160})


def _events(writer: int, op: int, batch: int) -> list[NewEvent]:
    return [
        NewEvent(
            type="NodeSucceeded",
            data={"node": "backup", "attempt": 1, "result": "done", "writer": writer, "op": op},
            metadata={"trace_id": f"bench-{writer}-{op}", "actor": "bench"},
        )
        for _ in range(batch)
    ]


def _stream(run: str, writer: int, op: int) -> tuple[str, int]:
    """The stream of a writer's op-th append and that append's position in the stream."""
    return f"{run}-w{writer}-s{op // STREAM_LENGTH}", op % STREAM_LENGTH


class _Runner:
    def __init__(self, pool: asyncpg.Pool, store: EventStore) -> None:
        self.pool = pool
        self.store = store

    def op(self, variant: str, run: str, batch: int) -> Op:
        async def ours(writer: int, op: int) -> None:
            stream, index = _stream(run, writer, op)
            expected = Expect.NO_STREAM if index == 0 else index * batch
            await self.store.append(stream, _events(writer, op, batch), expected)

        async def plain(writer: int, op: int) -> None:
            stream, index = _stream(run, writer, op)
            events = _events(writer, op, batch)
            if batch == 1:
                e = events[0]
                await self.pool.execute(
                    Q.plain_insert_one, stream, index + 1, e.type, e.data, e.metadata
                )
            else:
                await self.pool.execute(
                    Q.plain_insert_many,
                    stream,
                    index * batch,
                    [e.type for e in events],
                    [e.data for e in events],
                    [e.metadata for e in events],
                )

        async def plain_notify(writer: int, op: int) -> None:
            stream, index = _stream(run, writer, op)
            e = _events(writer, op, 1)[0]
            await self.pool.execute(
                Q.plain_insert_one_notify, stream, index + 1, e.type, e.data, e.metadata
            )

        return {"ours": ours, "plain": plain, "plain_notify": plain_notify}[variant]

    async def measure(self, writers: int, ops: int, op: Op) -> float:
        per_writer = ops // writers

        async def work(writer: int) -> None:
            for k in range(per_writer):
                await op(writer, k)

        seconds = await timed(writers, work)
        return per_writer * writers / seconds


async def run(server_url: str, *, size: Size, progress: bool = True) -> Report:
    plan = size.pick(FULL, QUICK, SMOKE)
    cases = [
        (w, b, [v for v in VARIANTS if v != "plain_notify" or b == 1])
        for w in WRITERS
        for b in BATCHES
    ]
    total = plan.rounds * sum(len(variants) for _, _, variants in cases)
    rates: dict[tuple[int, int, str], list[float]] = {}
    async with scratch_database(server_url) as url:
        setup = await connect(url)
        try:
            await setup.execute(Q.create_plain_table)
            version = await setup.fetchval(Q.server_version)
        finally:
            await setup.close()
        pool = await create_pool(url, min_size=max(WRITERS), max_size=max(WRITERS))
        notifier = Notifier(pool)
        listener = Listener(partial(connect, url))
        await listener.start()
        notifier.start()
        runner = _Runner(pool, EventStore(pool, on_commit=notifier.wake))
        bar = tqdm(total=total, desc="bench append", unit="run", disable=not progress)
        try:
            for round_no in range(plan.rounds):
                for writers, batch, variants in cases:
                    # Alternate which variant goes first, so neither always runs warm.
                    ordered = variants if round_no % 2 == 0 else variants[::-1]
                    for variant in ordered:
                        run_id = f"r{round_no}-w{writers}-b{batch}-{variant}"
                        op = runner.op(variant, run_id, batch)
                        rate = await runner.measure(writers, plan.ops[writers], op)
                        rates.setdefault((writers, batch, variant), []).append(rate)
                        bar.update()
            await asyncio.sleep(0.2)  # let the last notifications arrive
        finally:
            bar.close()
            await notifier.close()
            await listener.close()
            await pool.close()
    return _report(plan, rates, str(version), notifier.sent, listener.received, size)


def _report(
    plan: Plan,
    rates: dict[tuple[int, int, str], list[float]],
    server_version: str,
    notifications_sent: int,
    notifications_received: int,
    size: Size,
) -> Report:
    figures: dict[str, Any] = {
        "bench": "append",
        "size": size.value,
        "rounds": plan.rounds,
        "server_version": server_version,
        "notifications_sent": notifications_sent,
        "notifications_received": notifications_received,
    }
    rows = []
    appends = 0
    for writers in WRITERS:
        for batch in BATCHES:
            key = f"w{writers}_e{batch}"
            ours = median(rates[(writers, batch, "ours")])
            plain = median(rates[(writers, batch, "plain")])
            appends += round(plan.ops[writers] * plan.rounds)
            figures[f"ours_appends_per_s_{key}"] = round(ours, 1)
            figures[f"ours_events_per_s_{key}"] = round(ours * batch, 1)
            figures[f"plain_inserts_per_s_{key}"] = round(plain, 1)
            figures[f"ratio_{key}"] = round(ours / plain, 3)
            notify_cell: Any = "-"
            notify_ratio: Any = "-"
            if (writers, batch, "plain_notify") in rates:
                notify = median(rates[(writers, batch, "plain_notify")])
                figures[f"plain_notify_inserts_per_s_{key}"] = round(notify, 1)
                figures[f"ratio_notify_in_tx_{key}"] = round(notify / plain, 3)
                notify_cell, notify_ratio = notify, notify / plain
            rows.append(
                [writers, batch, ours, ours * batch, plain, ours / plain, notify_cell, notify_ratio]
            )
    figures["ours_appends"] = appends
    notes = [
        f"PostgreSQL {server_version}; median of {plan.rounds} round(s); "
        "ratio = ours / plain in this run.",
        f"wake-ups: {notifications_sent} NOTIFY sent (coalesced) for {appends} appends, "
        f"{notifications_received} received by a listener.",
    ]
    return Report(
        name="append",
        header=[
            "writers",
            "events",
            "ours/s",
            "ours ev/s",
            "plain/s",
            "ratio",
            "plain+notify/s",
            "ratio",
        ],
        rows=rows,
        figures=figures,
        notes=notes,
    )
