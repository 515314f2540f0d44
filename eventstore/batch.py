"""Group commit: appends to many streams in one statement, one round trip and one commit.

``append_batch`` is the statement: each stream has its own expected version and stands alone
(a stale one leaves that stream out, never the others). ``GroupCommit`` feeds it: appends
submitted while a batch is in flight wait and go together in the next one, so a lone append
is sent at once (no timer) and a busy process commits many streams per round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

import asyncpg

from flowlog.eventstore.compose import compose_statement
from flowlog.eventstore.errors import TRANSIENT_ERRORS, OrderConflict, WrongExpectedVersion
from flowlog.eventstore.events import (
    Expect,
    NewEvent,
    RecordedEvent,
    expected_as_sql,
    recorded_events,
)
from flowlog.eventstore.pool import Connection
from flowlog.eventstore.queries import Q

_T = TypeVar("_T")

Refusal = WrongExpectedVersion | OrderConflict
BatchResult = list[RecordedEvent] | Refusal
"""The events as recorded, or why the stream's append was refused (nothing written)."""

Statement = tuple[str, tuple[Any, ...]]

_CONTENTION = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)

_RESULT_COLUMNS = "position, transaction_id, stream_id, version, recorded_at"


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """One stream's part of a batch: its events after an exact expected version."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int | Expect


def batch_statement(
    appends: Sequence[StreamAppend], also: Sequence[Statement]
) -> tuple[str, tuple[Any, ...]]:
    """The SQL and arguments of one batch. ``also`` are set-based statements of the caller,
    run inside the same statement; each must act only on streams found in ``appended``."""
    stream_ids: list[str] = []
    expected: list[int] = []
    items: list[int] = []
    types: list[str] = []
    data: list[Any] = []
    metadata: list[Any] = []
    for item, append in enumerate(appends, start=1):
        version = _exact(append)
        if not append.events:
            raise ValueError("append needs at least one event")
        stream_ids.append(append.stream_id)
        expected.append(version)
        for event in append.events:
            if not event.type:
                raise ValueError("every event needs a type")
            items.append(item)
            types.append(event.type)
            data.append(event.data)
            metadata.append(event.metadata)
    if len(set(stream_ids)) != len(stream_ids):
        raise ValueError("a batch appends to each stream at most once")
    sqls = tuple(sql for sql, _ in also)
    counts = tuple(len(values) for _, values in also)
    extra = tuple(value for _, values in also for value in values)
    args = (stream_ids, expected, items, types, data, metadata, *extra)
    return _batch_sql(sqls, counts), args


def _exact(append: StreamAppend) -> int:
    if not isinstance(append.stream_id, str) or not append.stream_id:
        raise ValueError("stream_id must be a non-empty string")
    version = expected_as_sql(append.expected_version)
    if version is None:
        raise ValueError("a batch needs exact expected versions (Expect.ANY retries alone)")
    return version


def as_columns(rows: Sequence[Sequence[Any]], width: int) -> tuple[list[Any], ...]:
    """Rows as parallel arrays, one per column: a set-based statement's ``unnest`` input."""
    if not rows:
        return tuple([] for _ in range(width))
    return tuple(list(column) for column in zip(*rows, strict=True))


@cache
def _batch_sql(sqls: tuple[str, ...], counts: tuple[int, ...]) -> str:
    return compose_statement(Q.append_batch_with, 6, sqls, counts, _RESULT_COLUMNS)


async def append_batch(
    conn: Connection, appends: Sequence[StreamAppend], also: Sequence[Statement] = ()
) -> list[BatchResult]:
    """Runs one batch on ``conn`` outside any transaction block (it commits on its own) and
    returns, in the order of ``appends``, each stream's recorded events or its refusal."""
    sql, args = batch_statement(appends, also)
    rows = await conn.fetch(sql, *args)
    by_stream: dict[str, list[Any]] = {}
    for row in rows:
        by_stream.setdefault(row["stream_id"], []).append(row)
    refused = [a.stream_id for a in appends if a.stream_id not in by_stream]
    actual: dict[str, int] | None = {}
    if refused:
        # The batch has committed: a failure to read the refused streams' versions must not
        # turn the appends that were written into errors (their callers would retry them).
        try:
            rows = await conn.fetch(Q.stream_versions, refused)
            actual = {row["stream_id"]: int(row["version"]) for row in rows}
        except TRANSIENT_ERRORS:
            actual = None
    results: list[BatchResult] = []
    for append in appends:
        written = by_stream.get(append.stream_id)
        if written is None:
            version = None if actual is None else actual.get(append.stream_id, 0)
            results.append(_refusal(append, version))
            continue
        results.append(recorded_events(append.stream_id, written, append.events))
    return results


def _refusal(append: StreamAppend, actual: int | None) -> Refusal:
    """Why a stream was left out; ``actual`` None when its version could not be read."""
    expected = _exact(append)
    if expected == actual:
        # At the expected version, yet left out: its head was written by a transaction
        # younger than this one (possible only inside a longer transaction).
        return OrderConflict(append.stream_id)
    return WrongExpectedVersion(append.stream_id, expected, actual)


Prepare = Callable[[Sequence[_T]], tuple[list[StreamAppend], list[Statement]]]
Send = Callable[[list[StreamAppend], list[Statement]], Awaitable[list[BatchResult]]]
_Entry = tuple[_T, str, "asyncio.Future[BatchResult]"]


class GroupCommit(Generic[_T]):
    """Coalesces concurrent appends into batches.

    ``prepare(items)`` turns a batch of the caller's items into stream appends and the
    caller's set-based statements; ``send`` runs them (``EventStore.append_batch``). When
    the statement fails as a whole (a unique key of a caller's statement, a deadlock), each
    item of the batch is sent again alone, so one item's error fails only that item (a
    deadlock or serialization failure too: nothing was written); a transient error (the
    connection) fails every item of the batch, and their callers retry
    as they would a lone append. Appends to a stream already in the batch wait for the next.
    """

    def __init__(
        self,
        prepare: Prepare[_T],
        send: Send,
        *,
        max_batch: int = 200,
        in_flight: int = 2,
    ) -> None:
        """At most ``in_flight`` batches are sent at once (each on its own connection): with
        one, the process prepares the next batch while the database runs the last."""
        if in_flight < 1 or max_batch < 1:
            raise ValueError("in_flight and max_batch must be at least 1")
        self._prepare = prepare
        self._send = send
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._pending: list[_Entry[_T]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._flushing = 0
        self.batches = 0
        """Statements sent (batches, and items sent again alone): for tests and metrics."""
        self.appends = 0

    async def append(self, item: _T, stream_id: str) -> BatchResult:
        """Waits for the batch of ``item`` (an append to ``stream_id``); its recorded events,
        or its refusal (as a value, not raised)."""
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._pending.append((item, stream_id, future))
        if self._flushing < self._in_flight:
            # Counted here and uncounted by the flusher itself when it finds nothing pending,
            # with no await in between: a task's done callback would come a turn too late,
            # and an append made in that turn would wait for a flusher that never comes.
            self._flushing += 1
            flusher = asyncio.create_task(self._flush(), name="group-commit")
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def _flush(self) -> None:
        batch: list[_Entry[_T]] = []
        try:
            while self._pending:
                batch = self._take()
                await self._commit(batch)
        except BaseException:
            # Cancelled with the loop: no caller may wait forever for an answer.
            for _, _, future in [*batch, *self._pending]:
                future.cancel()
            self._pending = []
            raise
        finally:
            self._flushing -= 1

    def _take(self) -> list[_Entry[_T]]:
        batch: list[_Entry[_T]] = []
        later = []
        streams: set[str] = set()
        for entry in self._pending:
            stream_id = entry[1]
            if len(batch) >= self._max_batch or stream_id in streams:
                later.append(entry)
            else:
                streams.add(stream_id)
                batch.append(entry)
        self._pending = later
        return batch

    async def _commit(self, batch: list[_Entry[_T]]) -> None:
        self.batches += 1
        self.appends += len(batch)
        try:
            appends, also = self._prepare([item for item, _, _ in batch])
            results: list[BatchResult] = await self._send(appends, also)
        except Exception as exc:
            if isinstance(exc, TRANSIENT_ERRORS) and not isinstance(exc, _CONTENTION):
                _fail(batch, exc)  # the connection: every item's caller retries
                return
            # The statement failed as a whole and wrote nothing (a unique key of a caller's
            # statement, or a lock-order race lost): alone, each item meets only its own fate.
            if len(batch) == 1:
                _fail(batch, exc)
                return
            for entry in batch:
                await self._commit([entry])
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(batch: Sequence[_Entry[Any]], exc: BaseException) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(exc)
