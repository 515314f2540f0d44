"""The log's integrity under attack (issue 11): any-version appends under heavy contention,
every stream in version order in the global read, safe places to start reading, who may
change the log, and moving a log between clusters."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import asyncpg
import pytest

from flowlog.database import EMBEDDED_DATABASE, ensure_database
from flowlog.eventstore import (
    LOG_START,
    Checkpoint,
    EventStore,
    Expect,
    LogHorizonError,
    NewEvent,
    OrderConflict,
    RecordedEvent,
    Subscription,
    Transaction,
    TransactionAborted,
    check_log_horizon,
    create_pool,
)
from flowlog.migrate import migrate_database
from flowlog.pgserver import EmbeddedPostgres
from tests.helpers import cli_env, run_flowlog, wait_readable

pytestmark = pytest.mark.slow


def one(kind: str, **data: object) -> list[NewEvent]:
    return [NewEvent(kind, dict(data), {"actor": "test"})]


@pytest.fixture
async def wide_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # Fifty connections: the contention of the report (with forty, the old bounded retry
    # failed only now and then). Half the server's max_connections: the test runs alone.
    pool = await create_pool(database_url, min_size=1, max_size=50)
    yield pool
    await pool.close()


@pytest.mark.whole_server
@pytest.mark.timeout(300)  # its turn may wait for the longest test running elsewhere (~80 s)
@pytest.mark.parametrize("in_transaction", [False, True])
async def test_fifty_writers_of_any_version_all_land(
    wide_pool: asyncpg.Pool, in_transaction: bool
) -> None:
    """50 tasks, 40 appends each, one stream: "any version" never fails on a race."""
    store = EventStore(wide_pool)

    async def writer(n: int) -> None:
        for i in range(40):
            if in_transaction:
                # A transaction that loses the race gets a transaction id in doing so, which a
                # younger one may overtake: then it runs again as a new one (transact()).
                await store.transact(
                    lambda tx, n=n, i=i: tx.append("hot", one("E", writer=n, i=i), Expect.ANY),
                    attempts=100,
                )
            else:
                await store.append("hot", one("E", writer=n, i=i), Expect.ANY)

    await asyncio.gather(*(writer(n) for n in range(50)))
    stream = await store.read_stream("hot")
    assert [e.version for e in stream] == list(range(1, 2001))
    assert len({(e.data["writer"], e.data["i"]) for e in stream}) == 2000


# -- 3. Every stream in version order in the global read --------------------------------------


def _out_of_order_streams(log: list[RecordedEvent]) -> dict[str, list[int]]:
    """The streams whose versions, in the order given, are not 1, 2, 3, ..."""
    versions: dict[str, list[int]] = {}
    for event in log:
        versions.setdefault(event.stream_id, []).append(event.version)
    return {s: v for s, v in versions.items() if v != list(range(1, len(v) + 1))}


async def test_a_transaction_older_than_a_streams_head_may_not_append_to_it(
    store: EventStore,
) -> None:
    """The sequence of the issue: T1 appends to A; T2 appends B1 and commits; T1 appends to B.
    Kept, T1's B2 would come before B1 in the log's order (T1's id is the older)."""
    refusals: list[OrderConflict] = []
    written: list[RecordedEvent] = []

    async def older_then_b() -> None:
        async with store.transaction() as older:
            written.extend(await older.append("A", one("E"), Expect.ANY))
            written.extend(await store.append("B", one("E"), Expect.ANY))
            try:
                await older.append("B", one("E"), Expect.ANY)
            except OrderConflict as refused:
                refusals.append(refused)  # and the transaction goes on, as if nothing were

    with pytest.raises(TransactionAborted):
        await older_then_b()
    assert [r.stream_id for r in refusals] == ["B"]
    # Caught or not, the refusal rolled the whole transaction back: A's event went with it.
    assert await store.read_stream("A") == []
    a, b1 = written

    async def both(tx: Transaction) -> list[RecordedEvent]:
        return await tx.append("A", one("E"), Expect.ANY) + await tx.append(
            "B", one("E"), Expect.ANY
        )

    # Run again as a new transaction (what transact() does), it sorts after B1.
    rerun = await store.transact(both)
    log = await wait_readable(store, [b1.position, *(e.position for e in rerun)])
    assert [(e.stream_id, e.version) for e in log] == [("B", 1), ("A", 1), ("B", 2)]
    assert a.position not in {e.position for e in log}


async def test_an_expected_version_append_that_is_out_of_order_is_refused_too(
    store: EventStore,
) -> None:
    """With the expected version right, the order is still wrong: refused all the same."""

    async def older_then_b() -> None:
        async with store.transaction() as older:
            await older.append("A", one("E"), Expect.ANY)
            await store.append("B", one("E"), Expect.NO_STREAM)
            await older.append("B", one("E"), 1)

    with pytest.raises(OrderConflict):
        await older_then_b()
    assert await store.read_stream("A") == []
    assert [e.version for e in await store.read_stream("B")] == [1]


async def test_a_transaction_appends_to_a_stream_it_wrote_itself(store: EventStore) -> None:
    """The head written by the transaction itself has its own id: not younger, so not a
    conflict (the events sort by position after it)."""
    async with store.transaction() as tx:
        await tx.append("A", one("E1"), Expect.NO_STREAM)
        await tx.append("A", one("E2"), 1)
        await tx.append("A", [NewEvent("E3", {}), NewEvent("E4", {})], 2)
        await tx.append("A", one("E5"), Expect.ANY)
    stream = await store.read_stream("A")
    assert [(e.version, e.type) for e in stream] == [
        (1, "E1"), (2, "E2"), (3, "E3"), (4, "E4"), (5, "E5"),
    ]  # fmt: skip
    assert len({e.transaction_id for e in stream}) == 1
    assert [e.position for e in stream] == sorted(e.position for e in stream)


@dataclass
class _MultiStream:
    """One transaction of the soak: an event on each of ``streams``, with pauses between."""

    name: str
    streams: list[str]
    rollback: bool
    rng: random.Random
    runs: int = 0
    tags: list[str] = field(default_factory=list)

    async def __call__(self, tx: Transaction) -> None:
        self.runs += 1
        self.tags = []
        for k, stream in enumerate(self.streams):
            tag = f"{self.name}-{k}"
            await tx.append(stream, one("E", tag=tag), Expect.ANY)
            self.tags.append(tag)
            await asyncio.sleep(self.rng.uniform(0, 0.004))
        if self.rollback:
            raise _RollBack


async def _tail(store: EventStore, done: asyncio.Event) -> list[RecordedEvent]:
    """read_all in small batches until the writers are done and nothing is left."""
    seen: list[RecordedEvent] = []
    checkpoint = LOG_START
    while True:
        finished = done.is_set()
        batch = await store.read_all(checkpoint, 5)
        seen.extend(batch)
        if batch:
            checkpoint = batch[-1].checkpoint
        elif finished and not await store.has_events_after(checkpoint):
            return seen
        else:
            await asyncio.sleep(0.002)


async def test_a_soak_of_multi_stream_transactions_keeps_every_stream_in_order(
    wide_pool: asyncpg.Pool,
) -> None:
    """Eight writers, transactions over two to four of six streams, pauses between appends,
    one in six rolled back; a subscription and a tail of read_all follow. Both see each
    stream's events in version order, every committed event once."""
    store = EventStore(wide_pool)
    streams = [f"s{n}" for n in range(6)]
    transactions: list[_MultiStream] = []
    done = asyncio.Event()

    async def writer(w: int) -> None:
        rng = random.Random(w)
        for t in range(40):
            # In a fixed order, as careful writers do: in random orders, transactions also
            # deadlock on each other's next versions, which PostgreSQL breaks only after
            # deadlock_timeout (transact() runs the victim again: tested on its own below).
            chosen = sorted(rng.sample(streams, rng.randint(2, 4)))
            work = _MultiStream(f"w{w}-t{t}", chosen, rng.random() < 1 / 6, rng)
            transactions.append(work)
            with suppress(_RollBack):
                await store.transact(work, attempts=50)

    seen_by_subscription: list[RecordedEvent] = []
    expected = asyncio.get_running_loop().create_future()

    async def record(tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        seen_by_subscription.extend(events)
        if expected.done() and len(seen_by_subscription) >= expected.result():
            caught_up.set()

    caught_up = asyncio.Event()
    subscription = Subscription(store, "soak", record, batch_size=7, poll_interval=0.01)
    following = asyncio.create_task(subscription.run())
    tailing = asyncio.create_task(_tail(store, done))
    await asyncio.gather(*(writer(w) for w in range(8)))
    done.set()
    tailed = await tailing
    log = await wait_readable(store, [e.position for e in tailed])
    expected.set_result(len(log))
    if len(seen_by_subscription) < len(log):
        await asyncio.wait_for(caught_up.wait(), 30)
    subscription.stop()
    await following

    # The workload did meet the race: transactions were refused and run again.
    assert any(work.runs > 1 for work in transactions)
    committed = [tag for work in transactions if not work.rollback for tag in work.tags]
    assert sorted(e.data["tag"] for e in log) == sorted(committed)
    for seen in (log, tailed, seen_by_subscription):
        assert [e.position for e in seen] == [e.position for e in log]
        assert _out_of_order_streams(seen) == {}


async def test_transact_runs_the_victim_of_a_deadlock_again(store: EventStore) -> None:
    """Two transactions append to X and Y in opposite orders, each waiting for the other's
    next version: PostgreSQL cancels one, and transact() runs it again."""
    first_writes = asyncio.Barrier(2)
    runs = {"XY": 0, "YX": 0}

    def crossing(order: str) -> Callable[[Transaction], Awaitable[list[RecordedEvent]]]:
        async def work(tx: Transaction) -> list[RecordedEvent]:
            runs[order] += 1
            first = await tx.append(order[0], one("E", order=order), Expect.ANY)
            if runs[order] == 1:
                await first_writes.wait()
            return first + await tx.append(order[1], one("E", order=order), Expect.ANY)

        return work

    written = await asyncio.gather(store.transact(crossing("XY")), store.transact(crossing("YX")))
    # The victim ran again. So may the winner: when the victim's second run commits its first
    # stream before the winner's insert there, waiting on the victim's first run, goes on, the
    # winner meets a head younger than itself (OrderConflict) and runs again too.
    assert max(runs.values()) >= 2
    log = await wait_readable(store, [e.position for events in written for e in events])
    assert _out_of_order_streams(log) == {}
    assert sorted((e.stream_id, e.data["order"]) for e in log) == [
        ("X", "XY"), ("X", "YX"), ("Y", "XY"), ("Y", "YX")
    ]  # fmt: skip


# -- 4. Safe places to start reading -----------------------------------------------------------


async def _older_commits_after_younger(store: EventStore) -> tuple[Checkpoint, Checkpoint]:
    """An older transaction appends and stays open; checkpoint_now() is taken; a younger
    append commits and returns its checkpoint; then the older one commits. Returns (the
    younger append's checkpoint, checkpoint_now)."""
    release = asyncio.Event()
    began = asyncio.Event()

    async def older() -> None:
        async with store.transaction() as tx:
            await tx.append("older", one("E"), Expect.ANY)
            began.set()
            await release.wait()

    holding = asyncio.create_task(older())
    await began.wait()
    now = await store.checkpoint_now()
    younger = await store.append("younger", one("E"), Expect.ANY)
    release.set()
    await holding
    return younger[0].checkpoint, now


async def _read_from(store: EventStore, start: Checkpoint, wanted: int) -> list[str]:
    """The streams of what read_all yields after ``start``, once ``wanted`` events are
    readable or nothing is left to read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        events = await store.read_all(start, 100)
        if len(events) >= wanted or not await store.has_events_after(start):
            return [e.stream_id for e in events]
        assert loop.time() < deadline, "the log never became readable"
        await asyncio.sleep(0.01)


async def test_an_appended_events_checkpoint_is_no_place_to_start_reading(
    store: EventStore,
) -> None:
    """What the checkpoint of an append is not: the older transaction's event, committed
    after the append, sorts before it, and a read started there never sees it."""
    appended, _ = await _older_commits_after_younger(store)
    assert await _read_from(store, appended, 1) == []
    assert await _read_from(store, LOG_START, 2) == ["older", "younger"]


async def test_checkpoint_now_is_a_safe_place_to_start_reading(store: EventStore) -> None:
    """Taken before either commit, it yields both events, whichever committed last."""
    _, now = await _older_commits_after_younger(store)
    assert await _read_from(store, now, 2) == ["older", "younger"]


async def test_a_subscription_can_start_from_now(store: EventStore) -> None:
    """Events readable before checkpoint_now() are not fed to it; later ones are. (One
    committed just before it can be: a transaction open elsewhere in the cluster holds the
    horizon below it, and then it is not yet readable either.)"""
    before = await store.append("before", one("E"), Expect.ANY)
    await wait_readable(store, [before[0].position])
    seen: list[str] = []
    fed = asyncio.Event()

    async def record(tx: Transaction, events: Sequence[RecordedEvent]) -> None:
        seen.extend(e.stream_id for e in events)
        fed.set()

    subscription = Subscription(
        store, "from-now", record, poll_interval=0.01, start=await store.checkpoint_now()
    )
    await subscription.register()
    await store.append("after", one("E"), Expect.ANY)
    following = asyncio.create_task(subscription.run())
    await asyncio.wait_for(fed.wait(), 30)
    subscription.stop()
    await following
    assert seen == ["after"]


# -- 5. Moving a log to another cluster ---------------------------------------------------------


@pytest.fixture
def second_cluster() -> Iterator[EmbeddedPostgres]:
    """Another PostgreSQL cluster (its own transaction counter), beside the test server."""
    parent = Path(tempfile.mkdtemp(prefix="flpg-", dir="/tmp"))  # short: the socket is in it
    server = EmbeddedPostgres(parent / "data", settings={"fsync": "off"})
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


async def _flowlog_database(server: EmbeddedPostgres) -> str:
    await ensure_database(server.dsn(), EMBEDDED_DATABASE)
    url = server.dsn(EMBEDDED_DATABASE)
    await migrate_database(url)
    return url


async def test_export_and_import_move_a_log_to_another_cluster(
    store: EventStore, database_url: str, second_cluster: EmbeddedPostgres, tmp_path: Path
) -> None:
    """Exported here, imported there: the same events in the same order, with the other
    cluster's transaction ids, so readers and new appends there are in order."""
    written: list[RecordedEvent] = []
    for n in range(5):
        written += await store.transact(partial(_both, streams=(f"a-{n % 2}", f"b-{n % 3}"), n=n))
    source = await wait_readable(store, [e.position for e in written])
    exported = tmp_path / "log.jsonl"
    out = await asyncio.to_thread(
        run_flowlog, "export", "-o", str(exported), env=cli_env(DATABASE_URL=database_url)
    )
    assert out.returncode == 0, out.stderr
    here = cli_env(FLOWLOG_DATA_DIR=str(second_cluster.data_dir))
    loaded = await asyncio.to_thread(run_flowlog, "import", str(exported), env=here)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr

    target = await create_pool(second_cluster.dsn(EMBEDDED_DATABASE), max_size=2)
    try:
        there = EventStore(target)
        await check_log_horizon(target)
        moved = await there.read_all(limit=100)
        assert [_what(e) for e in moved] == [_what(e) for e in source]
        appended = await there.append("a-0", one("E", n=99), Expect.ANY)
        after = await there.read_all(moved[-1].checkpoint, 10)
        assert [e.position for e in after] == [appended[0].position]
        assert _out_of_order_streams(await there.read_all(limit=100)) == {}
    finally:
        await target.close()


async def _both(tx: Transaction, streams: tuple[str, str], n: int) -> list[RecordedEvent]:
    written: list[RecordedEvent] = []
    for stream in sorted(streams):
        written += await tx.append(stream, one("E", n=n), Expect.ANY)
    return written


def _what(event: RecordedEvent) -> tuple[object, ...]:
    return (event.stream_id, event.version, event.type, event.data, event.recorded_at)


async def test_a_log_restored_with_its_ids_is_refused_with_advice_that_works(
    second_cluster: EmbeddedPostgres,
) -> None:
    """A log from a cluster past its first wraparound (epoch 1), restored with its ids into a
    younger cluster (epoch 0), as pg_dump does. The advice (pg_resetwal with -e and -x) is
    followed, and then the log is readable in order and new events sort after it."""
    url = await _flowlog_database(second_cluster)
    restored = 2**32 + 5000
    conn = await asyncpg.connect(url)
    try:
        for version in (1, 2):
            await conn.execute(_RESTORE, restored + version, "old", version)
    finally:
        await conn.close()
    pool = await create_pool(url, max_size=1)
    try:
        with pytest.raises(LogHorizonError) as refused:
            await check_log_horizon(pool)
    finally:
        await pool.close()
    advice = re.search(r"`pg_resetwal (-e \d+ -x \d+) <data directory>`", str(refused.value))
    assert advice is not None, str(refused.value)
    assert advice.group(1) == "-e 1 -x 1048576"
    assert "flowlog import" in str(refused.value)

    second_cluster.stop()
    reset = second_cluster.run_tool("pg_resetwal", *advice.group(1).split())
    assert reset.returncode == 0, reset.stderr
    second_cluster.start()
    pool = await create_pool(url, max_size=2)
    try:
        await check_log_horizon(pool)
        there = EventStore(pool)
        appended = await there.append("old", one("E"), 2)
        assert appended[0].transaction_id > restored + 2
        log = await wait_readable(there, [appended[0].position])
        assert [(e.stream_id, e.version) for e in log] == [("old", 1), ("old", 2), ("old", 3)]
    finally:
        await pool.close()


# What a pg_dump restore writes: the events with their ids (only an owner can).
_RESTORE = """
INSERT INTO events (transaction_id, stream_id, version, type, data)
VALUES ($1::xid8, $2, $3, 'Old', '{}')
"""


async def test_a_subscription_checkpoint_from_another_cluster_is_refused(
    store: EventStore,
) -> None:
    """The log is fine, but a restored checkpoint lies ahead of this cluster's counter: the
    subscription would skip every event appended here until the counter got there."""
    await store.append("s", one("E"), Expect.ANY)
    await check_log_horizon(store.pool)
    await store.pool.execute(
        "INSERT INTO subscriptions (name, transaction_id, position) VALUES ('restored', "
        "(pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text::xid8, 1)"
    )
    with pytest.raises(LogHorizonError, match="pg_resetwal -e 0 -x"):
        await check_log_horizon(store.pool)


class _RollBack(Exception):
    pass
