"""Catch-up subscriptions: named consumers of the log with a checkpoint stored in the database.

A batch is one transaction: take the subscription's advisory lock, read its checkpoint, read
the next events in log order, let the handler write its effects through the same
transaction, move the checkpoint, commit. Effects and checkpoint commit together or not at
all, so each event's effects happen exactly once, across restarts and across processes that
run the same subscription (one of them holds the lock at a time; the others stand by).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from flowlog.eventstore.errors import TRANSIENT_ERRORS, OrderConflict, SubscriptionConflict
from flowlog.eventstore.events import LOG_START, Checkpoint, RecordedEvent
from flowlog.eventstore.notify import Listener
from flowlog.eventstore.queries import Q
from flowlog.eventstore.store import EventStore, Transaction
from flowlog.eventstore.wakeloop import wake_or_poll

# OrderConflict: the handler appended to a stream that a younger transaction had just
# written; the batch was rolled back and runs again, as a younger transaction.
_RETRYABLE: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, OrderConflict)

log = logging.getLogger(__name__)

Handler = Callable[[Transaction, Sequence[RecordedEvent]], Awaitable[None]]
"""Applies a batch of events; it writes through ``tx.connection`` (or ``tx.append``)."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    handled: int
    """Events handled (and checkpointed) by this batch."""
    held_back: bool
    """The batch came back short although committed events follow it: they wait behind an
    older open transaction (or became readable just now). Look again soon."""
    locked_out: bool
    """Another process is running a batch of this subscription."""


class Subscription:
    """Feeds the log, from the stored checkpoint on, to ``handler`` in batches."""

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler,
        *,
        listener: Listener | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        min_retry: float = 0.01,
        start: Checkpoint = LOG_START,
    ) -> None:
        """``poll_interval`` is the fallback when no notification arrives (or no listener is
        given); ``min_retry`` is the first delay when events are held back. ``start`` is
        where a new subscription begins: the start of the log, or ``store.checkpoint_now()``
        for what is appended from then on (an appended event's checkpoint is no safe start);
        a registered one resumes from its stored checkpoint."""
        if not name:
            raise ValueError("a subscription needs a name")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._store = store
        self.name = name
        self._handler = handler
        self._listener = listener
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._min_retry = min_retry
        self._wake = asyncio.Event()
        self._stopping = False
        self._retry = min_retry
        self._start = start

    async def register(self) -> None:
        """Stores the subscription at its start unless it exists (idempotent)."""
        start = self._start
        await self._store.pool.execute(
            Q.subscription_ensure, self.name, start.transaction_id, start.position
        )

    async def checkpoint(self) -> Checkpoint:
        """The stored checkpoint (the start of the log for a new subscription)."""
        row = await self._store.pool.fetchrow(Q.subscription_checkpoint, self.name)
        return LOG_START if row is None else Checkpoint(row[0], row[1])

    async def run_batch(self) -> BatchOutcome:
        """Processes at most one batch, atomically with its checkpoint."""
        async with self._store.transaction() as tx:
            conn = tx.connection
            if not await conn.fetchval(Q.subscription_try_lock, self.name):
                return BatchOutcome(0, held_back=False, locked_out=True)
            row = await conn.fetchrow(Q.subscription_checkpoint, self.name)
            if row is None:
                raise SubscriptionConflict(
                    f"subscription {self.name!r} is not registered: call register() first"
                )
            start = Checkpoint(row[0], row[1])
            await tx.check_not_removed(start)
            events = await tx.read_all(start, self._batch_size)
            end = events[-1].checkpoint if events else start
            if events:
                await self._handler(tx, events)
                status = await conn.execute(
                    Q.subscription_advance,
                    self.name,
                    end.transaction_id,
                    end.position,
                    start.transaction_id,
                    start.position,
                )
                if status != "UPDATE 1":
                    raise SubscriptionConflict(
                        f"subscription {self.name!r} moved from {start} during a batch"
                    )
            held_back = len(events) < self._batch_size and await tx.has_events_after(end)
        return BatchOutcome(len(events), held_back=held_back, locked_out=False)

    def stop(self) -> None:
        """Asks ``run`` to return after the batch in progress."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Consumes the log until ``stop()``. A handler's exception ends it (the batch is
        rolled back and will be retried by the next run); connection errors are retried.
        RemovedEvents ends it too: events it has not read yet were archived away."""
        await self.register()
        self._retry = self._min_retry
        await wake_or_poll(
            self._next_batch, wake=self._wake, listener=self._listener,
            stopping=lambda: self._stopping, retry_on=_RETRYABLE, retry_base=self._min_retry,
            retry_max=self._poll_interval, failed=self._failed, notified_ends_backoff=False,
        )  # fmt: skip

    async def _next_batch(self) -> float:
        """Runs a batch; the seconds to wait before the next: none after a full batch, the
        held-back retry (doubling) while events are held back, else the poll interval."""
        outcome = await self.run_batch()
        if outcome.handled == self._batch_size:
            return 0.0
        if outcome.held_back:
            delay, self._retry = self._retry, min(self._retry * 2, self._poll_interval)
            return delay
        self._retry = self._min_retry
        return self._poll_interval

    def _failed(self, exc: BaseException, delay: float) -> None:
        log.warning(
            "subscription batch failed, retrying",
            extra={"subscription": self.name, "error": repr(exc), "delay": delay},
        )
