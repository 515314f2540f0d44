"""Flows in the event store: one stream per flow, and the pending-work row kept in step.

Every append to a flow's stream also upserts (or deletes) the flow's ``flow_work`` row,
computed from the state after the append, inside the append's own SQL statement
(``AppendAlso``): one round trip, and the reactor's queue can never disagree with the log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from app.workflow.decide import due_at
from app.workflow.errors import FlowNotFound
from app.workflow.events import FlowEvent, encode
from app.workflow.history import flow_stream, fold_recorded
from app.workflow.idempotency import Idempotency, KeyTaken, claim, key_taken
from app.workflow.projection import node_rows, touched_nodes, workflow_row
from app.workflow.state import FlowState, evolve, retimed
from eventstore import AppendAlso, EventStore, Expect, NewEvent, RecordedEvent
from projections.inline import flow_statements
from projections.rows import APPEND_TIME
from sql import load_queries

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WorkflowQueries:
    work_upsert: str
    work_delete: str
    work_claim: str
    work_heartbeat: str
    work_release: str
    work_reschedule: str
    work_defer: str
    work_release_all: str
    work_next_due: str
    declarative_definitions: str


Q = load_queries(WorkflowQueries, "workflow")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who issues a command, recorded in each event's metadata (the audit trail)."""

    actor: str = "system"
    trace_id: str | None = None
    request_id: str | None = None
    reason: str | None = None
    idempotency: Idempotency | None = None
    """The caller's idempotency key: its command has one effect however often it is sent."""

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"actor": self.actor}
        for key in ("trace_id", "request_id", "reason"):
            value = getattr(self, key)
            if value:
                meta[key] = value
        if self.idempotency is not None:
            meta["idempotency_key"] = self.idempotency.key
        return meta


SYSTEM = Caller()


class FlowRepository:
    def __init__(self, store: EventStore, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock

    async def load(self, flow_id: str) -> FlowState:
        return (await self.load_with_events(flow_id))[0]

    async def load_with_events(self, flow_id: str) -> tuple[FlowState, list[RecordedEvent]]:
        """The flow's state and the stored events it was folded from."""
        recorded = await self.store.read_stream(flow_stream(flow_id))
        if not recorded:
            raise FlowNotFound(flow_id)
        return self.fold(recorded), recorded

    @staticmethod
    def fold(recorded: Sequence[RecordedEvent]) -> FlowState:
        """The state of a flow from its (non-empty) stored events."""
        state = fold_recorded(recorded)
        assert state is not None
        return state

    async def append(
        self,
        state: FlowState | None,
        events: Sequence[FlowEvent],
        caller: Caller = SYSTEM,
        request: str | None = None,
    ) -> FlowState:
        """Appends ``events`` after ``state`` (expected version) and returns the new state.

        Raises WrongExpectedVersion when the flow moved meanwhile: the caller re-reads and
        decides again. With the caller's idempotency key and ``request`` (its fingerprint),
        the key is recorded by the append's own statement; KeyTaken when a concurrent request
        with the same key did so first (nothing was written).
        """
        now = self.clock()
        # Folded at the placeholder time: the projection rows take the append's recorded
        # time from the statement itself (projections.rows.APPEND_TIME).
        provisional = state
        for event in events:
            provisional = evolve(provisional, event, APPEND_TIME)
        assert provisional is not None
        meta = caller.metadata()
        new_events = []
        for event in events:
            event_type, data, schema = encode(event)
            new_events.append(NewEvent(event_type, data, {**meta, **schema}))
        expected = Expect.NO_STREAM if state is None else state.version
        started, changed = touched_nodes(events)
        projected = flow_statements(
            None if state is None else workflow_row(state),
            workflow_row(provisional),
            node_rows(provisional, started),
            node_rows(provisional, changed),
        )
        statements = [work_change(provisional, now), *projected]
        if caller.idempotency is not None and request is not None:
            stream = flow_stream(provisional.flow_id)
            statements.append(claim(caller.idempotency, request, stream, provisional.version))
        try:
            recorded = await self.store.append(
                flow_stream(provisional.flow_id),
                new_events,
                expected,
                also=AppendAlso.of(*statements),
            )
        except asyncpg.UniqueViolationError as exc:
            if key_taken(exc):
                raise KeyTaken() from exc
            raise
        return retimed(provisional, APPEND_TIME, recorded[0].recorded_at)


def work_change(state: FlowState, now: datetime) -> tuple[str, tuple[Any, ...]]:
    """The change of the flow's ``flow_work`` row that ``state`` demands."""
    due = due_at(state, now)
    if due is None:
        return Q.work_delete, (state.flow_id,)
    return Q.work_upsert, (
        state.flow_id, state.name, state.definition_version, state.status.value, due,
        state.version,
    )  # fmt: skip
