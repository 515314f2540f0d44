"""The fan-out: each subscription's cursor reads the log and turns the events it wants into
delivery rows, in the cursor's own transaction (the eventstore's subscription machinery:
lock, read in log order, write, advance, commit), so each event is enqueued exactly once
per subscription, whichever process runs the batch.

An event is wanted when it is a flow's, the flow belongs to the subscription's tenant (a
tenant's subscription never sees another tenant's flows), its type is subscribed, and the
flow's definition and its status after the event pass the subscription's filters. A flow
archived away (no row) is skipped. One statement per batch writes the rows and the lanes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from flowlog.eventstore import (
    EventStore,
    RecordedEvent,
    RemovedEvents,
    Subscription,
    SubscriptionConflict,
    Transaction,
)
from flowlog.webhooks.queries import Q
from flowlog.webhooks.status import STATUS_EVENTS, status_after

log = logging.getLogger(__name__)

FLOW_PREFIX = "flow-"


def cursor_name(webhook_id: str) -> str:
    """The eventstore subscription that is a webhook's cursor."""
    return f"webhook-{webhook_id}"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """What the fan-out needs of a subscription (its row in ``webhooks``)."""

    id: str
    tenant: str
    events: frozenset[str]
    definitions: frozenset[str] | None
    statuses: frozenset[str] | None
    state: str

    @classmethod
    def of(cls, row: asyncpg.Record) -> Subscriber:
        def maybe(values: list[str] | None) -> frozenset[str] | None:
            return None if values is None else frozenset(values)

        return cls(row["id"], row["tenant_id"], frozenset(row["events"]),
                   maybe(row["definitions"]), maybe(row["statuses"]), row["state"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Wanted:
    position: int
    stream_id: str
    event_type: str
    status: str | None


async def wanted(
    tx: Transaction, subscriber: Subscriber, events: Sequence[RecordedEvent]
) -> list[Wanted]:
    """The batch's events that ``subscriber`` is sent, with the flow's status after each."""
    streams = {e.stream_id for e in events
               if e.type in subscriber.events and e.stream_id.startswith(FLOW_PREFIX)}  # fmt: skip
    if not streams:
        return []
    conn = tx.connection
    flows = {row["stream_id"]: row for row in await conn.fetch(Q.flows_of, sorted(streams))}
    kept = {
        stream for stream, row in flows.items()
        if row["tenant_id"] == subscriber.tenant
        and (subscriber.definitions is None or row["name"] in subscriber.definitions)
    }  # fmt: skip
    if not kept:
        return []
    first: dict[str, int] = {}
    for event in events:
        if event.stream_id in kept:
            first.setdefault(event.stream_id, event.version)
    status: dict[str, str | None] = dict.fromkeys(kept)
    if any(version > 1 for version in first.values()):
        streams_before = [s for s, v in first.items() if v > 1]
        versions = [first[s] for s in streams_before]
        rows = await conn.fetch(Q.status_before, streams_before, versions, list(STATUS_EVENTS))
        for row in rows:
            status[row["stream_id"]] = status_after(None, row["type"], row["data"])
    found: list[Wanted] = []
    for event in events:
        if event.stream_id not in kept:
            continue
        after = status_after(status[event.stream_id], event.type, event.data)
        status[event.stream_id] = after
        if event.type not in subscriber.events:
            continue
        if subscriber.statuses is not None and after not in subscriber.statuses:
            continue
        found.append(Wanted(event.position, event.stream_id, event.type, after))
    return found


TURN_BATCHES = 4
"""Batches a subscription's cursor reads in its turn before the next subscription's."""


class FanOut:
    """Runs the cursors of every active subscription, batch after batch, in this process;
    ``enqueued`` is told which flows of which subscription have new rows, once they are
    committed (the senders look at once)."""

    def __init__(
        self,
        store: EventStore,
        enqueued: Callable[[str, Iterable[str]], None],
        *,
        batch_size: int = 500,
    ) -> None:
        self._store = store
        self._enqueued = enqueued
        self._batch_size = batch_size
        self.subscribers: list[Subscriber] = []

    async def reload(self) -> None:
        """Reads the subscriptions again, and forgets what deleted ones had pending."""
        pool = self._store.pool
        self.subscribers = [Subscriber.of(row) for row in await pool.fetch(Q.subscribers)]
        await pool.execute(Q.forget_deleted)

    async def run(self) -> bool:
        """Runs every active subscription's cursor a few batches on (to the readable end of
        the log, unless it is far behind). True when some events were held back (behind an
        open transaction) or are left for the next turn: look again soon."""
        held_back = False
        for subscriber in self.subscribers:
            if subscriber.state == "active":
                held_back |= await self._catch_up(subscriber)
        return held_back

    async def _catch_up(self, subscriber: Subscriber) -> bool:
        async def handle(tx: Transaction, events: Sequence[RecordedEvent]) -> None:
            rows = await wanted(tx, subscriber, events)
            if rows:
                await tx.connection.execute(
                    Q.enqueue, subscriber.id, [r.position for r in rows],
                    [r.stream_id for r in rows], [r.event_type for r in rows],
                    [r.status for r in rows],
                )  # fmt: skip
                handled.extend(r.stream_id for r in rows)

        cursor = Subscription(self._store, cursor_name(subscriber.id), handle,
                              batch_size=self._batch_size)  # fmt: skip
        # A few batches a turn, then the next subscription's: one far behind (just made to
        # replay the log from its start) must not hold up every other tenant's deliveries.
        for _ in range(TURN_BATCHES):
            handled: list[str] = []
            try:
                outcome = await cursor.run_batch()
            except SubscriptionConflict as exc:  # not registered (yet): its create is racing
                log.warning("webhook cursor unusable", extra={"webhook": subscriber.id,
                                                              "error": str(exc)})  # fmt: skip
                return False
            except RemovedEvents as exc:
                log.error("webhook cursor behind archived events: replay it from later",
                          extra={"webhook": subscriber.id, "error": str(exc)})  # fmt: skip
                return False
            if handled:
                self._enqueued(subscriber.id, set(handled))
            if outcome.locked_out or outcome.handled < self._batch_size:
                return outcome.held_back
        return True  # more to read: its next turn comes soon
