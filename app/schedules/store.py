"""Schedules in the event store: one stream per schedule, and its row (``schedules``) kept in
step by each append's own statement."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flowlog.eventstore import AppendAlso, EventStore, Expect, NewEvent, RecordedEvent
from flowlog.schedules.decide import SETTLE, next_due, next_fires
from flowlog.schedules.events import (
    ScheduleCreated,
    ScheduleEvent,
    ScheduleFired,
    decode,
    encode,
    schedule_stream,
)
from flowlog.schedules.state import ScheduleState, evolve, from_snapshot, snapshot
from flowlog.sql import load_queries
from flowlog.times import Clock, utc_now
from flowlog.workflow.caller import Caller
from flowlog.workflow.idempotency import KeyTaken, claim_one, key_taken


@dataclass(frozen=True, slots=True)
class ScheduleQueries:
    upsert: str
    claim: str
    release: str
    next_due: str
    list: str
    count: str
    flow_status: str
    definition_known: str
    restore: str
    all_rows: str
    snapshot: str


Q = load_queries(ScheduleQueries, "schedules")


def fold_recorded(recorded: Sequence[RecordedEvent]) -> ScheduleState | None:
    state: ScheduleState | None = None
    for event in recorded:
        state = evolve(state, decode(event.type, event.data), event.version, event.recorded_at)
    return state


class ScheduleRepository:
    def __init__(self, store: EventStore, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    async def load(self, schedule_id: str) -> tuple[ScheduleState | None, int]:
        """The schedule's state (None: never made) and its stream's version: the row's
        snapshot and the events after it (none, unless the row is behind)."""
        row = await self.pool.fetchrow(Q.snapshot, schedule_id)
        stream = schedule_stream(schedule_id)
        if row is None:  # no row (rebuild pending): the whole stream
            recorded = await self.store.read_stream(stream)
            return fold_recorded(recorded), len(recorded)
        state = from_snapshot(row["state"], row["created_at"], row["updated_at"])
        for event in await self.store.read_stream(stream, state.version + 1):
            state = evolve(state, decode(event.type, event.data), event.version,
                           event.recorded_at)  # fmt: skip
        return state, state.version

    async def latest_events(self, schedule_id: str, version: int, count: int
                            ) -> list[RecordedEvent]:  # fmt: skip
        """The schedule's last ``count`` events (of a stream at ``version``), oldest first."""
        stream = schedule_stream(schedule_id)
        return await self.store.read_stream(stream, max(1, version - count + 1))

    async def append(
        self,
        state: ScheduleState | None,
        schedule_id: str,
        events: Sequence[ScheduleEvent],
        caller: Caller,
        version: int,
        key: tuple[Any, ...] | None = None,
    ) -> ScheduleState:
        """Appends after stream version ``version`` (WrongExpectedVersion when it moved);
        the new state, folded at the append's time. ``key``: the caller's idempotency key
        (``idempotency.claim``), recorded by the append's own statement; KeyTaken when a
        concurrent request with the same key did so first (nothing was written)."""
        now = self.clock()
        after = state
        for offset, event in enumerate(events, 1):
            after = evolve(after, event, version + offset, now)
        assert after is not None
        meta = caller.metadata()
        new = [NewEvent(kind, data, meta) for kind, data in map(encode, events)]
        fired = any(isinstance(e, ScheduleFired) for e in events)
        created = any(isinstance(e, ScheduleCreated) for e in events)
        # Right after a fire its flow may not exist yet: the row is due again soon, and the
        # scheduler that fired sets the real due time once it has made the flow. If it was
        # killed in between, another one makes the flow then.
        due = now + SETTLE if fired else next_due(after, now)
        if due is None and after.last_flow_id is not None:
            # Paused, deleted or ended after a fire: once more, to make that fire's flow if the
            # scheduler that recorded it died before it could.
            due = now + SETTLE
        upcoming = next_fires(after, 1)
        row = (
            after.schedule_id, after.tenant_id, after.spec.flowName, after.status.value,
            after.spec.model_dump(mode="json"), upcoming[0] if upcoming else None, due,
            after.last_fire_at, after.last_flow_id, after.fires, after.skipped,
            version + len(events), created, snapshot(after),
        )  # fmt: skip
        statements = [(Q.upsert, row)]
        if key is not None:
            statements.append(claim_one(key))
        try:
            recorded = await self.store.append(
                schedule_stream(schedule_id),
                new,
                version or Expect.NO_STREAM,
                also=AppendAlso.of(*statements),
            )
        except asyncpg.UniqueViolationError as exc:
            if key_taken(exc):
                raise KeyTaken() from exc
            raise
        return _retimed(after, now, recorded[-1].recorded_at)

    async def rows(self, tenant: str | None, after: str, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(Q.list, tenant, after, limit))

    async def count(self, tenant: str | None) -> int:
        return int(await self.pool.fetchval(Q.count, tenant))


def _retimed(state: ScheduleState, placeholder: datetime, at: datetime) -> ScheduleState:
    """The state with the append's own recorded time where the fold put the clock's."""
    changes: dict[str, Any] = {"updated_at": at}
    if state.created_at == placeholder:
        changes["created_at"] = at
    if state.considered_until == placeholder:
        changes["considered_until"] = at
    return dataclasses.replace(state, **changes)
