"""Flows in the event store: one stream per flow, and the pending-work row kept in step.

Every append to a flow's stream also upserts (or deletes) the flow's ``flow_work`` row,
computed from the state after the append, and its projection rows, inside the append's own
SQL statement (a batch of appends, ``EventStore.append_batch``): one round trip, and the
reactor's queue and the tables can never disagree with the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flowlog.eventstore import (
    BatchResult,
    EventStore,
    Expect,
    GroupCommit,
    NewEvent,
    RecordedEvent,
    StreamAppend,
    Transaction,
)
from flowlog.eventstore.batch import Refusal, Statement, append_batch, as_columns
from flowlog.projections.inline import FlowChange, flow_statements
from flowlog.projections.rows import APPEND_TIME
from flowlog.times import Clock, utc_now
from flowlog.workflow.admission import release_statements
from flowlog.workflow.caller import SYSTEM, Caller
from flowlog.workflow.errors import FlowNotFound
from flowlog.workflow.event_waits import WaitRow
from flowlog.workflow.events import FlowEvent, FlowMigrated, FlowRetried, encode
from flowlog.workflow.fold import evolve, renamed_nodes, retimed
from flowlog.workflow.idempotency import KeyTaken, claim, claims, key_taken
from flowlog.workflow.node_decisions import due_at
from flowlog.workflow.projection import node_rows, touched_nodes, wait_row, workflow_row
from flowlog.workflow.queries import Q
from flowlog.workflow.state import FlowState, offered_task
from flowlog.workflow.streams import flow_stream, fold_recorded


@dataclass(frozen=True, slots=True)
class _FlowAppend:
    """One flow's append, ready to join a batch: its events, and what it does to the rows."""

    state: FlowState
    """The flow after the append, folded at the placeholder time (APPEND_TIME)."""
    stream: StreamAppend
    change: FlowChange
    due: datetime | None
    key: tuple[Any, ...] | None
    """The caller's idempotency key, recorded with the effect."""
    child_end: tuple[Any, ...] | None = None
    """A child flow that this append ends: its row in ``flow_children``."""
    child_rerun: bool = False
    """A child flow that this append runs again (retried): its end is no longer one."""
    harvest: Sequence[Harvested] = ()
    """Ends of the flow's children that this append counts (ChildrenEnded)."""
    limited: bool = False
    """A flow of a definition with flow control: the append gives back the slots it no
    longer needs (app/workflow/admission.py)."""
    offers: bool = False
    """The append offers a task on a queue (a new one, or one a start makes available)."""
    waits: tuple[str | None, WaitRow | None] = (None, None)
    """The flow's wait for an event that the append ends (its node id), and the one it begins
    (its row in ``event_waits``)."""


@dataclass(frozen=True, slots=True)
class Harvested:
    """A child's end as a parent read it: marked counted by the append that counts it."""

    parent_node_id: str
    index: int
    child_version: int


class FlowRepository:
    """Loads flows and appends their events. Appends of concurrent callers are committed
    together (group commit): one statement, one round trip and one commit for a batch, each
    flow with its own expected version. Requests and the reactor have a lane each."""

    def __init__(self, store: EventStore, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock
        self.commits: GroupCommit[_FlowAppend] = GroupCommit(_batch, self._send)
        """Appends of requests (API commands, creates): batches of their own, so that a
        request never waits behind the reactor's batch of many transitions."""
        self.background: GroupCommit[_FlowAppend] = GroupCommit(_batch, self._send)
        """The reactor's appends (outcomes and next starts)."""
        self._watched: dict[str, asyncio.Event] = {}
        self.limited: Callable[[str], bool] = lambda name: False
        self.on_offer: Callable[[], None] = lambda: None
        """Called after a commit that offered a task (the engine's notifier of offers)."""
        """Whether flows of a definition name have flow control (the engine's registry)."""

    def watch(self, parent_id: str) -> asyncio.Event:
        """Set when a child of ``parent_id`` ends by an append of this process (a drive holding
        the parent waits on it; children ending in other processes are found by polling)."""
        return self._watched.setdefault(parent_id, asyncio.Event())

    def unwatch(self, parent_id: str) -> None:
        self._watched.pop(parent_id, None)

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
        *,
        background: bool = False,
        harvest: Sequence[Harvested] = (),
    ) -> FlowState:
        """Appends ``events`` after ``state`` (expected version) and returns the new state
        (``background``: the reactor's appends, batched apart from requests'; ``harvest``:
        the children's ends that ``events`` count, marked counted by the same statement).

        Raises WrongExpectedVersion when the flow moved meanwhile: the caller re-reads and
        decides again. With the caller's idempotency key and ``request`` (its fingerprint),
        the key is recorded by the append's own statement; KeyTaken when a concurrent request
        with the same key did so first (nothing was written).
        """
        pending = self._prepare(state, events, caller, request, harvest=harvest)
        recorded = await self._commit(pending, self.background if background else self.commits)
        return retimed(pending.state, APPEND_TIME, recorded[0].recorded_at)

    async def append_recorded(
        self,
        state: FlowState,
        events: Sequence[FlowEvent],
        caller: Caller = SYSTEM,
        *,
        rows_absent: bool = False,
    ) -> tuple[FlowState, list[RecordedEvent]]:
        """``append``, returning the events as recorded too (an archive holds them). With
        ``rows_absent``: for a flow whose stream is in the log but whose rows are not (brought
        back from an archive), the append writes all its rows anew."""
        pending = self._prepare(state, events, caller, None, rows_absent=rows_absent)
        recorded = await self._commit(pending, self.commits)
        return retimed(pending.state, APPEND_TIME, recorded[0].recorded_at), recorded

    async def append_in(
        self,
        tx: Transaction,
        changes: Sequence[tuple[FlowState, Sequence[FlowEvent]]],
        caller: Caller = SYSTEM,
    ) -> list[FlowState | Refusal]:
        """Appends to flows inside the caller's transaction (one statement, a batch's, keeping
        the same rows in step), committed or rolled back with it. Each flow stands alone: a
        stale one's refusal (WrongExpectedVersion, OrderConflict) is its answer, and nothing of
        it was written; the transaction goes on."""
        if not changes:
            return []
        pending = [self._prepare(state, events, caller, None) for state, events in changes]
        appends, statements = _batch(pending)
        results = await append_batch(tx.connection, appends, statements)
        answers: list[FlowState | Refusal] = []
        for item, result in zip(pending, results, strict=True):
            if isinstance(result, list):
                tx.appended = True  # the store wakes the reactors after the commit
                answers.append(retimed(item.state, APPEND_TIME, result[0].recorded_at))
            else:
                answers.append(result)
        return answers

    async def _commit(
        self, pending: _FlowAppend, lane: GroupCommit[_FlowAppend]
    ) -> list[RecordedEvent]:
        try:
            result = await lane.append(pending, pending.stream.stream_id)
        except asyncpg.UniqueViolationError as exc:
            if key_taken(exc):
                raise KeyTaken() from exc
            raise
        if isinstance(result, Exception):
            raise result
        if pending.child_end is not None and (woken := self._watched.get(pending.child_end[0])):
            woken.set()
        if pending.offers:
            self.on_offer()
        return result

    def _prepare(
        self,
        state: FlowState | None,
        events: Sequence[FlowEvent],
        caller: Caller,
        request: str | None,
        *,
        rows_absent: bool = False,
        harvest: Sequence[Harvested] = (),
    ) -> _FlowAppend:
        # Folded at the placeholder time: the projection rows take the append's recorded
        # time from the statement itself (projections.rows.APPEND_TIME).
        provisional = state
        renamed: list[str] = []  # executions a migration renames: their rows change too
        for event in events:
            if isinstance(event, FlowMigrated) and provisional is not None:
                renamed += renamed_nodes(provisional, event)
            provisional = evolve(provisional, event, APPEND_TIME)
        assert provisional is not None
        meta = caller.metadata()
        new_events = []
        for event in events:
            event_type, data, schema = encode(event)
            new_events.append(NewEvent(event_type, data, {**meta, **schema}))
        stream = flow_stream(provisional.flow_id)
        expected = Expect.NO_STREAM if state is None else state.version
        started, changed = touched_nodes(events)
        changed |= set(renamed) - started
        if rows_absent:
            started, changed = {node.node_id for node in provisional.nodes}, set()
        change = FlowChange(
            None if state is None or rows_absent else workflow_row(state),
            workflow_row(provisional),
            node_rows(provisional, started),
            node_rows(provisional, changed),
        )
        key = None
        if caller.idempotency is not None and request is not None:
            key = claim(caller.idempotency, request, stream, provisional.version)
        return _FlowAppend(
            provisional, StreamAppend(stream, new_events, expected), change,
            due_at(provisional, self.clock()), key, _child_end(state, provisional),
            provisional.parent is not None and any(isinstance(e, FlowRetried) for e in events),
            harvest, self.limited(provisional.name), _offers(state, provisional),
            _waits(None if state is None or rows_absent else state, provisional),
        )  # fmt: skip

    async def _send(
        self, appends: list[StreamAppend], statements: list[Statement]
    ) -> list[BatchResult]:
        return await self.store.append_batch(appends, also=statements)


def _batch(appends: Sequence[_FlowAppend]) -> tuple[list[StreamAppend], list[Statement]]:
    """A batch's stream appends and the statements that keep the tables in step with them."""
    # A parent whose child ends in the same batch is due now: the child's end cannot wake it
    # from another statement of the batch (one statement changes a row once).
    woken = {a.child_end[0] for a in appends if a.child_end is not None}
    now = utc_now()
    dues = [(a.state, _sooner(a.due, now) if a.state.flow_id in woken else a.due)
            for a in appends]  # fmt: skip
    statements = [
        *work_statements(dues),
        *flow_statements([a.change for a in appends]),
        claims([a.key for a in appends if a.key is not None]),
        *children_statements(appends),
        *release_statements([a.state for a in appends if a.limited]),
        *wait_statements([a.waits for a in appends]),
    ]
    # Statements with no rows are left out: they would change nothing, yet cost the database
    # 0.5 ms a lone append (measured). The batches' statement texts are then a handful of
    # shapes, each prepared once per connection.
    used = [(sql, args) for sql, args in statements if any(len(column) for column in args)]
    return [a.stream for a in appends], used


def work_statements(
    flows: Sequence[tuple[FlowState, datetime | None]],
) -> tuple[Statement, Statement]:
    """The changes of the flows' ``flow_work`` rows that their states demand (a row due at
    ``due``, or none): an upsert and a delete, each of a set of rows."""
    due: list[tuple[Any, ...]] = []
    done: list[str] = []
    for state, when in flows:
        if when is None:
            done.append(state.flow_id)
        else:
            queue, task_node, operation = offered_task(state) or (None, None, None)
            due.append((state.flow_id, state.name, state.definition_version,
                        state.status.value, when, state.version, state.tenant_id, queue,
                        task_node, operation, state.priority))  # fmt: skip
    return (Q.work_upsert, as_columns(due, 11)), (Q.work_delete, (done,))


def _waits(before: FlowState | None, after: FlowState) -> tuple[str | None, WaitRow | None]:
    """The wait for an event an append ends, and the one it begins (app/workflow/event_waits.py):
    each node execution waits once, so a row is only ever inserted, then deleted."""
    old = None if before is None else wait_row(before)
    new = wait_row(after)
    if old is not None and new is not None and old.node_id == new.node_id:
        return None, None
    return (None if old is None else old.node_id), new


def wait_statements(waits: Sequence[tuple[str | None, WaitRow | None]]) -> list[Statement]:
    """What a batch's appends do to ``event_waits``: the rows of waits they end and begin."""
    gone = [node_id for node_id, _ in waits if node_id is not None]
    new = [(w.node_id, w.flow_id, w.tenant_id, w.event_type, w.match, w.since)
           for _, w in waits if w is not None]  # fmt: skip
    return [
        (Q.waits_delete, (gone,)),
        (Q.waits_insert, as_columns(new, 6)),
    ]


def _offers(before: FlowState | None, after: FlowState) -> bool:
    """Whether the append makes a task available to polls: a new offer, or a start."""
    offer = offered_task(after)
    if offer is None:
        return False
    return before is None or offered_task(before) != offer or before.status != after.status


def _sooner(due: datetime | None, now: datetime) -> datetime | None:
    return None if due is None else min(due, now)


def _child_end(before: FlowState | None, after: FlowState) -> tuple[Any, ...] | None:
    """A child's row in ``flow_children`` when this append ends it."""
    link = after.parent
    if link is None or not after.terminal or (before is not None and before.terminal):
        return None
    return (link.flow_id, link.node_id, link.index, after.flow_id, after.status.value,
            dict(after.context), after.version)  # fmt: skip


def children_statements(appends: Sequence[_FlowAppend]) -> list[Statement]:
    """What a batch's appends do to ``flow_children``: children that ended (and the parents to
    wake), children run again, and the ends their parents count."""
    ended = [a.child_end for a in appends if a.child_end is not None]
    rerun = [a.state.flow_id for a in appends if a.child_rerun]
    harvested = [(a.state.flow_id, h.parent_node_id, h.index, h.child_version)
                 for a in appends for h in a.harvest]  # fmt: skip
    woken = [(row[0], row[3]) for row in ended]
    return [
        (Q.children_end, as_columns(ended, 7)),
        (Q.children_wake_parents, as_columns(woken, 2)),
        (Q.children_unend, (rerun,)),
        (Q.children_harvest, as_columns(harvested, 4)),
    ]
