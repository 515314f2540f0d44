"""The event store: append with optimistic concurrency, read a stream, read the log in order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import asyncpg

from flowlog.eventstore.batch import BatchResult, Statement, StreamAppend, append_batch
from flowlog.eventstore.compose import compose_statement
from flowlog.eventstore.errors import (
    AnyVersionContention,
    LogHorizonError,
    OrderConflict,
    RemovedEvents,
    TransactionAborted,
    WrongExpectedVersion,
)
from flowlog.eventstore.events import (
    LOG_START,
    Checkpoint,
    Expect,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    expected_as_sql,
    recorded_events,
)
from flowlog.eventstore.pool import Connection, Executor
from flowlog.eventstore.queries import Q

_T = TypeVar("_T")

AppendHook = Callable[["Transaction", Sequence[RecordedEvent]], Awaitable[None]]
"""Runs in the append's transaction, after the events are inserted (inline projections)."""


@dataclass(frozen=True, slots=True)
class AppendAlso:
    """The caller's own data-modifying statements, run inside the append's single statement.

    Where a hook costs a transaction (BEGIN, the insert, the hook's statements, COMMIT), this
    keeps the append at one statement and one round trip, with the same atomicity. Each
    statement becomes a common table expression after the insert, so:

    - each is written with its own parameters ``$1, $2...``, filled from its ``args``
      (they are renumbered after the append's own five); no dollar-quoted strings;
    - each can read the CTE ``appended`` (position, transaction_id, version, recorded_at);
    - each **must act only when ``appended`` has rows** (``WHERE EXISTS (SELECT 1 FROM
      appended)``): a stale expected version inserts nothing and must change nothing;
    - none sees the new rows of ``events``, nor the others' changes (one statement, one
      snapshot), and no two may change the same row.
    """

    statements: tuple[tuple[str, tuple[Any, ...]], ...]

    @classmethod
    def of(cls, *statements: tuple[str, tuple[Any, ...]]) -> AppendAlso:
        return cls(tuple(statements))


_VERSION_KEY = "events_stream_version_key"
# How often an any-version append retries after losing a race for the next version, and the
# longest it sleeps between tries (random, growing: contenders spread out instead of colliding
# again in step). Past the last try, AnyVersionContention says so.
_ANY_VERSION_ATTEMPTS = 200
_ANY_VERSION_BACKOFF_MAX = 0.02
_MAX_VERSION = 2**63 - 1


class _Reads:
    """Reading, the same on the pool (EventStore) and inside a transaction (Transaction)."""

    _executor: Executor

    async def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last event; 0 when it does not exist."""
        return await stream_version(self._executor, stream_id)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events from ``from_version`` to ``to_version`` (inclusive), in order."""
        if from_version < 1:
            raise ValueError("stream versions start at 1")
        upper = _MAX_VERSION if to_version is None else to_version
        rows = await self._executor.fetch(Q.read_stream, stream_id, from_version, upper)
        return [RecordedEvent(*row) for row in rows]

    async def read_all(
        self, after: Checkpoint = LOG_START, limit: int = 1000
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events after ``after`` in the log's total order.

        Never skips a committed event: events of transactions still open are held back
        until every older transaction has ended (docs/eventstore.md).
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        rows = await self._executor.fetch(Q.read_all, after.transaction_id, after.position, limit)
        return [RecordedEvent(*row) for row in rows]

    async def checkpoint_now(self) -> Checkpoint:
        """A safe place to start reading from now on: ``read_all`` after it yields every event
        committed after this call (and some committed shortly before: those of transactions
        younger than the oldest one still open in the cluster, which can be far back while a
        long transaction is open). Unlike an appended event's checkpoint, it lies below every
        transaction that may still commit."""
        return Checkpoint(int(await self._executor.fetchval(Q.checkpoint_now)), 0)

    async def removal_horizon(self) -> Checkpoint | None:
        """The log-order place of the last event ever removed from the log (archival), or
        None: a reader starting at or after it misses no removed event."""
        row = await self._executor.fetchrow(Q.removal_horizon)
        return None if row is None else Checkpoint(int(row[0]), int(row[1]))

    async def check_not_removed(self, after: Checkpoint) -> None:
        """Raises RemovedEvents when events after ``after`` were removed from the log."""
        row = await self._executor.fetchrow(Q.removed_after, after.transaction_id, after.position)
        if row is not None:
            raise RemovedEvents(
                f"events after {after} were removed from the log by {row['record_stream']} "
                f"({row['events']} events, positions {row['first_position']}.."
                f"{row['last_position']}, at {row['removed_at']:%Y-%m-%d %H:%M:%S%z}): reading "
                "on would skip them. Read them from that archive (flowlog history, or flowlog "
                "import to restore it), or start after them (EventStore.removal_horizon())."
            )

    async def has_events_after(self, after: Checkpoint) -> bool:
        """Whether committed events follow ``after``, readable yet or held back behind an
        older open transaction."""
        return bool(
            await self._executor.fetchval(Q.more_after, after.transaction_id, after.position)
        )


class EventReader(_Reads):
    """Reading on any connection or pool (for instance inside a caller's own transaction)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor


class EventStore(_Reads):
    """The append-only log in PostgreSQL, over an asyncpg pool (see eventstore.pool)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        hooks: Sequence[AppendHook] = (),
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        """``hooks`` run inside every append's transaction; ``on_commit`` is called after
        each commit that appended events (the Notifier's ``wake``)."""
        self._pool = pool
        self._executor = pool
        self._hooks = tuple(hooks)
        self._on_commit = on_commit

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        hook: AppendHook | None = None,
        also: AppendAlso | None = None,
    ) -> list[RecordedEvent]:
        """Appends ``events`` to ``stream_id`` atomically and returns them as recorded.

        Without hooks this is one statement: one transaction, one round trip (``also`` runs
        inside that statement). Raises WrongExpectedVersion, having written nothing, when the
        stream is not at ``expected_version``. The events' checkpoints say where they sort,
        not where to start reading: see ``checkpoint_now()``.
        """
        if self._hooks or hook is not None:
            async with self.transaction() as tx:
                return await tx.append(stream_id, events, expected_version, hook=hook, also=also)
        args = _append_args(stream_id, events, expected_version, also)
        async with self._pool.acquire() as conn:
            recorded = await _insert_autocommit(conn, args)
        self._committed()
        return recorded

    async def append_batch(
        self, appends: Sequence[StreamAppend], *, also: Sequence[Statement] = ()
    ) -> list[BatchResult]:
        """Appends to many streams in one statement (one round trip, one commit) and returns,
        in order, each stream's recorded events or its refusal (WrongExpectedVersion or
        OrderConflict, returned, not raised: the other streams' appends stand).

        Every stream needs an exact expected version and appears once. ``also`` are the
        caller's set-based statements, run inside the same statement: each may read the CTE
        ``appended`` (position, transaction_id, stream_id, version, recorded_at) and must act
        only on rows of the streams found there. Hooks do not run (refused when configured).
        """
        if self._hooks:
            raise ValueError("append hooks run per append; use append() with hooks")
        if not appends:
            return []
        async with self._pool.acquire() as conn:
            results = await append_batch(conn, appends, also)
        if any(isinstance(result, list) for result in results):
            self._committed()
        return results

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A READ COMMITTED transaction in which callers append and run their own SQL.

        It commits when the block ends normally and rolls back when it raises. If a
        statement failed inside and the caller swallowed the error, PostgreSQL has already
        aborted the transaction and answers COMMIT with ROLLBACK: that raises
        TransactionAborted instead of passing for a commit. Nest with ``tx.savepoint()``
        (asyncpg's ``connection.transaction()`` refuses to run inside this one).
        """
        async with self._pool.acquire() as conn:
            await conn.execute(Q.begin)
            tx = Transaction(self, conn)
            try:
                yield tx
            except BaseException:
                # A broken connection cannot roll back; the pool discards it.
                with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await conn.execute(Q.rollback)
                raise
            if tx.refused is not None:
                # An append was refused and the caller went on: what the transaction wrote
                # was decided on a stream state that was not the stream's.
                await conn.execute(Q.rollback)
                raise TransactionAborted(
                    f"an append of the transaction was refused ({tx.refused}) and the "
                    "transaction went on: it was rolled back"
                )
            status = await conn.execute(Q.commit)
        if status != "COMMIT":
            raise TransactionAborted(
                "the transaction failed inside (an error was caught there) and was rolled back"
            )
        if tx.appended:
            self._committed()

    async def transact(
        self, work: Callable[[Transaction], Awaitable[_T]], *, attempts: int = 10
    ) -> _T:
        """Runs ``work(tx)`` in a transaction, and again in a new one when it meets an
        OrderConflict (a younger transaction wrote to one of its streams first: run again, the
        transaction is younger than that one) or a deadlock (transactions appending to the
        same streams in different orders wait on each other's next versions; PostgreSQL
        cancels one). ``work`` must be safe to run again: it is when everything it does goes
        through ``tx``. Past ``attempts``, the last error is raised."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        for attempt in range(attempts):
            try:
                async with self.transaction() as tx:
                    return await work(tx)
            except (OrderConflict, asyncpg.DeadlockDetectedError):
                if attempt == attempts - 1:
                    raise
            await _back_off(attempt)
        raise AssertionError("unreachable")

    async def _run_hooks(
        self, tx: Transaction, recorded: Sequence[RecordedEvent], hook: AppendHook | None
    ) -> None:
        for each in self._hooks:
            await each(tx, recorded)
        if hook is not None:
            await hook(tx, recorded)

    def _committed(self) -> None:
        if self._on_commit is not None:
            self._on_commit()


class Transaction(_Reads):
    """An open transaction of the event store; its connection is the caller's to use too."""

    def __init__(self, store: EventStore, conn: Connection) -> None:
        self._store = store
        self.connection = conn
        self._executor = conn
        self.appended = False
        self.refused: WrongExpectedVersion | OrderConflict | None = None

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        hook: AppendHook | None = None,
        also: AppendAlso | None = None,
    ) -> list[RecordedEvent]:
        """Appends within this transaction; the events commit (or roll back) with it.

        A WrongExpectedVersion or an OrderConflict dooms the transaction: it rolls back at the
        end of the block even if the error was caught. Run it again, deciding anew
        (``EventStore.transact`` does so for an OrderConflict).
        """
        args = _append_args(stream_id, events, expected_version, also)
        try:
            if expected_version is Expect.ANY:
                recorded = await self._append_any_version(args)
            else:
                try:
                    recorded = await _insert(self.connection, args)
                except asyncpg.UniqueViolationError as exc:
                    # The transaction is aborted: the winner's version cannot be read here.
                    raise _translate_conflict(exc, args, None) from exc
        except (WrongExpectedVersion, OrderConflict) as exc:
            self.refused = exc
            raise
        self.appended = True
        await self._store._run_hooks(self, recorded, hook)
        return recorded

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested block: if it raises, only what it did is rolled back."""
        await self.connection.execute(Q.savepoint)
        try:
            yield
        except BaseException:
            with suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await self.connection.execute(Q.rollback_to_savepoint)
                await self.connection.execute(Q.release_savepoint)
            raise
        await self.connection.execute(Q.release_savepoint)

    async def _append_any_version(self, args: _AppendArgs) -> list[RecordedEvent]:
        # A savepoint per attempt keeps the caller's transaction usable after a lost race.
        for attempt in range(_ANY_VERSION_ATTEMPTS):
            try:
                async with self.savepoint():
                    return await _insert(self.connection, args)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != _VERSION_KEY:
                    raise _translate_conflict(exc, args, None) from exc
            await _back_off(attempt)
        raise AnyVersionContention(args.stream_id, _ANY_VERSION_ATTEMPTS)


class _AppendArgs:
    __slots__ = ("also", "events", "expected", "metadata", "stream_id", "types", "values")

    def __init__(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int | None,
        also: AppendAlso | None,
    ) -> None:
        self.stream_id = stream_id
        self.events = events
        self.expected = expected
        self.also = also
        self.types = [e.type for e in events]
        self.values = [e.data for e in events]
        self.metadata = [e.metadata for e in events]

    def statement(self) -> tuple[str, tuple[Any, ...]]:
        """The SQL and the arguments of this append."""
        single = len(self.events) == 1
        if single:
            args: tuple[Any, ...] = (
                self.stream_id, self.expected, self.types[0], self.values[0], self.metadata[0]
            )  # fmt: skip
        else:
            args = (self.stream_id, self.expected, self.types, self.values, self.metadata)
        statements = () if self.also is None else self.also.statements
        sqls = tuple(sql for sql, _ in statements)
        counts = tuple(len(values) for _, values in statements)
        extra = tuple(value for _, values in statements for value in values)
        return _with_also(single, sqls, counts), args + extra


@cache
def _with_also(single: bool, sqls: tuple[str, ...], counts: tuple[int, ...]) -> str:
    """The append's CTEs, then the caller's statements (renumbered), then the append's result."""
    return compose_statement(
        Q.append_one_with if single else Q.append_with, 5, sqls, counts,
        "position, transaction_id, version, recorded_at",
    )  # fmt: skip


def _append_args(
    stream_id: str,
    events: Sequence[NewEvent],
    expected_version: ExpectedVersion,
    also: AppendAlso | None = None,
) -> _AppendArgs:
    if not isinstance(stream_id, str) or not stream_id:
        raise ValueError("stream_id must be a non-empty string")
    if not events:
        raise ValueError("append needs at least one event")
    for event in events:
        if not event.type:
            raise ValueError("every event needs a type")
    return _AppendArgs(stream_id, events, expected_as_sql(expected_version), also)


async def _insert_autocommit(conn: Connection, args: _AppendArgs) -> list[RecordedEvent]:
    """One statement outside any transaction block: it commits on its own."""
    for attempt in range(_ANY_VERSION_ATTEMPTS):
        try:
            return await _insert(conn, args)
        except asyncpg.UniqueViolationError as exc:
            if not (args.expected is None and exc.constraint_name == _VERSION_KEY):
                actual = await stream_version(conn, args.stream_id)
                raise _translate_conflict(exc, args, actual) from exc
        # Another append took the next version; nothing was written: try again.
        await _back_off(attempt)
    raise AnyVersionContention(args.stream_id, _ANY_VERSION_ATTEMPTS)


async def _back_off(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, min(_ANY_VERSION_BACKOFF_MAX, 0.0002 * 2**attempt)))


async def _insert(conn: Connection, args: _AppendArgs) -> list[RecordedEvent]:
    statement, values = args.statement()
    rows = await conn.fetch(statement, *values)
    if not rows:
        # The statement's WHERE chose no rows: the stream is not at the expected version, or
        # (in a transaction of several statements) a younger transaction wrote its last event.
        actual = await stream_version(conn, args.stream_id)
        if args.expected is None or args.expected == actual:
            raise OrderConflict(args.stream_id)
        raise WrongExpectedVersion(args.stream_id, args.expected, actual)
    return recorded_events(args.stream_id, rows, args.events)


def _translate_conflict(
    exc: asyncpg.UniqueViolationError, args: _AppendArgs, actual: int | None
) -> Exception:
    if exc.constraint_name != _VERSION_KEY:
        return exc
    return WrongExpectedVersion(args.stream_id, args.expected, actual)


async def stream_version(executor: Executor, stream_id: str) -> int:
    return int(await executor.fetchval(Q.stream_version, stream_id))


async def check_log_horizon(executor: Executor) -> None:
    """Refuses a log whose transaction ids are not all in this cluster's past.

    Reading in order relies on every event's transaction id being older than any transaction
    to come. A log restored from pg_dump into another cluster keeps its old ids, which may
    be ahead of the new cluster's counter: new events would then sort before old ones and
    readers past the old ones would never see them. Run at service start.
    """
    row = await executor.fetchrow(Q.horizon_check)
    assert row is not None
    newest, upcoming = row["newest"], row["next"]
    if newest is not None and newest >= upcoming:
        epoch, xid = counter_past(newest)
        raise LogHorizonError(
            f"the event log holds transaction id {newest} (epoch {newest >> 32}) but this "
            f"server's next transaction id is {upcoming} (epoch {upcoming >> 32}): the log was "
            "restored into another cluster with its transaction ids. Move it with `flowlog "
            "export` on the cluster it comes from and `flowlog import` into an empty database "
            "here (the events get this cluster's ids). Or, only if nothing was appended to it "
            "here yet, stop this server and advance its counter past the log: "
            f"`pg_resetwal -e {epoch} -x {xid} <data directory>` (both options: -x alone "
            "cannot set the epoch); `flowlog verify` then finds any stream already out of order."
        )


_XACT_SEGMENT = 32 * 32768  # transactions per pg_xact file: 32 pages of 32768


def counter_past(newest: int) -> tuple[int, int]:
    """The ``pg_resetwal -e EPOCH -x XID`` that puts a cluster's next transaction id past
    ``newest`` (a 64-bit id). XID is rounded up to the start of a pg_xact segment, the safe
    value pg_resetwal's documentation describes: the server creates a segment's status pages
    as it enters them, and would not find a page entered half-way."""
    epoch, xid = divmod(newest + 1, 2**32)
    xid = -(-xid // _XACT_SEGMENT) * _XACT_SEGMENT or _XACT_SEGMENT
    if xid >= 2**32:
        epoch, xid = epoch + 1, _XACT_SEGMENT
    return epoch, xid
