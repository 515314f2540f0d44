"""Idempotent commands: a request that names a key has one effect, however often it is sent
(a client that lost the answer to a create can send it again and get the same flow).

A key belongs to a tenant and remembers what was asked (a fingerprint of the operation and its
arguments) and what came of it:

- an effect: the key is written by the append's own statement (``claim``), so no crash can
  separate them, and a concurrent request with the same key fails that statement and writes
  nothing (``KeyTaken``); its answer is folded again from the log, up to the version the
  effect left;
- no effect (the state already was as asked, or a refusal): recorded on its own, since there is
  nothing to be atomic with.

The same key with another request is refused (``KeyReused``). Keys expire (24 hours by default)
and are swept in small batches that never make an append wait.

``KeyedRequest`` is the one way commands use keys: the first answer when the key is known,
else the request acts and the key is recorded with what came of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

import asyncpg
import orjson

from flowlog.eventstore.batch import as_columns
from flowlog.eventstore.pool import Executor
from flowlog.sql import load_queries
from flowlog.workflow.errors import Code, WorkflowError

DEFAULT_TTL = timedelta(hours=24)
KEY_CONSTRAINT = "idempotency_keys_pkey"
SWEEP_BATCH = 1000


@dataclass(frozen=True, slots=True)
class IdempotencyQueries:
    claim: str
    claim_one: str
    record: str
    find: str
    sweep: str


Q = load_queries(IdempotencyQueries, "idempotency")


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The key a caller gave, in its tenant, and how long it is remembered."""

    key: str
    tenant_id: str = ""
    ttl: timedelta = DEFAULT_TTL

    def within(self, part: str) -> Idempotency:
        """A key of its own for one part of a request (one flow of a bulk action)."""
        return Idempotency(f"{self.key}/{part}", self.tenant_id, self.ttl)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What came of the first request with a key."""

    stream_id: str | None
    version: int | None
    code: int | None
    message: str | None
    answer: Any

    def refusal(self) -> WorkflowError | None:
        if self.code is None:
            return None
        return WorkflowError(Code(self.code), self.message or "")

    def effect(self) -> tuple[str, int]:
        """The stream and the version the first request's effect left (or that it answered
        with, when it changed nothing), to fold again; its refusal raised again."""
        refusal = self.refusal()
        if refusal is not None:
            raise refusal
        assert self.stream_id is not None
        assert self.version is not None
        return self.stream_id, self.version


class KeyTaken(Exception):
    """A concurrent request with the same key recorded its effect first: this append wrote
    nothing."""


class KeyReused(WorkflowError):
    def __init__(self, key: str) -> None:
        super().__init__(
            Code.IDEMPOTENCY_REUSED,
            f"the idempotency key {key!r} was used for another request; use a new key",
        )


def fingerprint(operation: str, *arguments: Any) -> str:
    """What a request asks, as a hash: the same operation with the same arguments."""
    text = orjson.dumps([operation, *arguments], option=orjson.OPT_SORT_KEYS, default=list)
    return hashlib.sha256(text).hexdigest()


def claim(idempotency: Idempotency, request: str, stream_id: str, version: int) -> tuple[Any, ...]:
    """The row that records the key with the effect (see ``claims``)."""
    return (idempotency.tenant_id, idempotency.key, request, stream_id, version,
            idempotency.ttl.total_seconds())  # fmt: skip


def claims(rows: Sequence[tuple[Any, ...]]) -> tuple[str, tuple[Any, ...]]:
    """The statement that records ``claim`` rows with the appends they are the effects of,
    inside the appends' own statement (only for the streams appended to)."""
    return Q.claim, as_columns(rows, 6)


def claim_one(key: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """The statement that records one ``claim`` row with a single stream's append (an
    ``AppendAlso`` statement)."""
    return Q.claim_one, key


def key_taken(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError) and exc.constraint_name == KEY_CONSTRAINT


async def find(executor: Executor, idempotency: Idempotency, request: str) -> Recorded | None:
    """What the key's first request came to, if it is known and has not expired; KeyReused if
    that request asked something else."""
    row = await executor.fetchrow(Q.find, idempotency.tenant_id, idempotency.key)
    if row is None:
        return None
    if row["request"] != request:
        raise KeyReused(idempotency.key)
    return Recorded(row["stream_id"], row["version"], row["code"], row["message"], row["answer"])


async def _record(
    executor: Executor,
    idempotency: Idempotency,
    request: str,
    *,
    stream_id: str | None = None,
    version: int | None = None,
    refusal: WorkflowError | None = None,
    answer: Any = None,
) -> Recorded | None:
    """Records what a request that appended nothing came to (it changed nothing, was refused,
    or its answer is kept). None when recorded; else what a concurrent request with the same
    key recorded first."""
    code = None if refusal is None else int(refusal.code)
    message = None if refusal is None else refusal.message
    written = await executor.fetchval(
        Q.record, idempotency.tenant_id, idempotency.key, request, stream_id, version, code,
        message, answer, idempotency.ttl.total_seconds(),
    )  # fmt: skip
    if written is not None:
        return None
    return await find(executor, idempotency, request)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KeyedRequest(Generic[T]):
    """A request (``request``: its fingerprint) under the caller's idempotency key (None: no
    key, and each step does what the request does without one). ``replay`` is the answer of
    the key's first request from what it recorded (its refusal again, or its effect folded
    again from the log).

    A command asks ``answered()`` first, then acts; it ends in ``refused``, ``unchanged``,
    ``recorded``, or its append (with ``claim``), and ``taken`` when that append raised
    KeyTaken."""

    executor: Executor
    key: Idempotency | None
    request: str
    replay: Callable[[Recorded], Awaitable[T]]

    async def answered(self) -> T | None:
        """The first request's answer, when the key is known; None: act."""
        if self.key is None:
            return None
        found = await find(self.executor, self.key, self.request)
        return None if found is None else await self.replay(found)

    def claim(self, stream_id: str, version: int) -> tuple[Any, ...] | None:
        """The row that records the key with an append's effect (see ``claims``)."""
        return None if self.key is None else claim(self.key, self.request, stream_id, version)

    async def taken(self) -> T:
        """The answer when the append raised KeyTaken: the twin's, which recorded first."""
        assert self.key is not None
        found = await find(self.executor, self.key, self.request)
        assert found is not None
        return await self.replay(found)

    async def refused(self, refusal: WorkflowError) -> T:
        """Raises ``refusal``, recorded under the key: sent again, the request is refused the
        same way, whatever the state by then. When a twin (the same key) came first, its
        answer is the answer: its refusal raised, or its effect replayed."""
        if self.key is None:
            raise refusal
        first = await _record(self.executor, self.key, self.request, refusal=refusal)
        if first is None:
            raise refusal
        return await self.replay(first)

    async def unchanged(self, answer: T, stream_id: str, version: int) -> T:
        """``answer``, for a request that changed nothing: the key remembers the version of
        ``stream_id`` it answered with (or the twin's answer, when a twin came first)."""
        if self.key is None:
            return answer
        first = await _record(self.executor, self.key, self.request, stream_id=stream_id,
                              version=version)  # fmt: skip
        return answer if first is None else await self.replay(first)

    async def recorded(self, answer: T, stored: Callable[[], Any]) -> T:
        """``answer``, for a request whose effect is not an append of its own: the key
        remembers it as ``stored()`` (JSON), or the twin's answer, when a twin came first."""
        if self.key is None:
            return answer
        first = await _record(self.executor, self.key, self.request, answer=stored())
        return answer if first is None else await self.replay(first)


async def sweep(executor: Executor, batch: int = SWEEP_BATCH) -> int:
    """Deletes expired keys, a batch at a time; returns how many."""
    swept = 0
    while True:
        status = await executor.execute(Q.sweep, batch)
        count = int(status.split()[-1])
        swept += count
        if count < batch:
            return swept
