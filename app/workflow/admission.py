"""Flow control where it is enforced: in the database, for every process (docs/workers.md,
"Flow control"). Before a reactor starts a node of a limited definition, it asks here:

- a definition's concurrency: the flow takes a slot of its key value before its first node
  (and again after a stop or a retry), and gives it back with the append that ends it;
- a node's concurrency: a slot before the node starts, given back with its outcome;
- a node's rate limit: the next start of its key value is reserved, and the flow starts then.

Slots are taken one (scope, key value) at a time under an advisory lock, in the order flows
were created; an append that gives slots back wakes the oldest waiters in the same statement
(sql/queries/admission.sql). A flow that may not start yet waits in its ``flow_work`` row,
holding nothing, and is looked at again when woken or after a while.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flowlog.eventstore.batch import Statement, as_columns
from flowlog.sql import load_queries
from flowlog.workflow.definition import WorkflowDefinition
from flowlog.workflow.limits import (
    Concurrency,
    flow_scope,
    key_value,
    node_scope,
    rate_scope,
    scope_parts,
)
from flowlog.workflow.state import FlowState, FlowStatus


@dataclass(frozen=True, slots=True)
class AdmissionQueries:
    slot_take: str
    slot_wait: str
    slots_release: str
    slots_wake: str
    slots_wake_work: str
    rate_reserved: str
    rate_reserve: str
    waiting_for: str


Q = load_queries(AdmissionQueries, "admission")

NEAR_RECHECK = 2.0
"""A waiter near the front looks again this often (it is woken when a slot is given back:
this covers a wake-up lost to a race)."""
FAR_RECHECK = 15.0


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether the node may start now; if not, for how long to wait, and why."""

    admitted: bool
    wait: float = 0.0
    why: str = ""


ADMITTED = Admission(True)


def kept_scopes(state: FlowState) -> list[str]:
    """The slots a limited flow keeps after an append: its definition's while it runs, its
    running node's; a flow that ended, or stopped with nothing running, keeps none."""
    running = state.running_node
    if state.terminal or (state.status is FlowStatus.STOPPED and running is None):
        return []
    if state.status is FlowStatus.CANCELING and running is None:
        return []
    kept = [flow_scope(state.name)]
    if running is not None:
        kept.append(node_scope(state.name, running.key))
    return kept


def release_statements(states: Sequence[FlowState]) -> list[Statement]:
    """What a batch's appends of limited flows do to their slots (``AppendAlso`` statements):
    give back those they no longer need, wake the oldest waiters."""
    kept = [(s.flow_id, scope) for s in states for scope in kept_scopes(s)]
    args = (sorted({s.flow_id for s in states}), *as_columns(kept, 2))
    return [(Q.slots_release, args), (Q.slots_wake, args), (Q.slots_wake_work, args)]


class Gate:
    """Asks the database whether a node may start, for the reactor of one process."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._held: dict[str, set[tuple[str, str]]] = {}
        """The definitions' slots that flows being driven here hold: their next nodes need
        not ask. Kept for one drive only (``forget``): within a drive a flow gives its slot
        back only by ending or stopping, after which the drive starts nothing."""

    def forget(self, flow_id: str) -> None:
        """The flow's drive ended: what it holds is asked of the database next time."""
        self._held.pop(flow_id, None)

    async def admit(self, state: FlowState, key: str, definition: WorkflowDefinition) -> Admission:
        """Takes what the start of node ``key`` needs (slots, a reserved start), or says why
        it must wait."""
        if definition.concurrency is not None:
            found = await self._slot(state, flow_scope(state.name), definition.concurrency)
            if not found.admitted:
                return found
        node = definition.node(key)
        if node.concurrency is not None:
            found = await self._slot(state, node_scope(state.name, key), node.concurrency)
            if not found.admitted:
                return found
        if node.rate_limit is not None:
            limit = node.rate_limit
            scope, value = rate_scope(state.name, key), self._value(limit.key, state)
            wait = await self._pool.fetchval(Q.rate_reserved, scope, value, state.flow_id)
            if wait is None:
                wait = await self._pool.fetchval(
                    Q.rate_reserve, scope, value, state.flow_id, state.tenant_id, limit.spacing
                )
            if wait > 0:
                return Admission(False, wait, f"rate limit {limit.key}={value}")
        return ADMITTED

    @staticmethod
    def _value(key: str, state: FlowState) -> str:
        return key_value(key, state.biz_id, state.tenant_id, state.context)

    async def _slot(self, state: FlowState, scope: str, limit: Concurrency) -> Admission:
        value = self._value(limit.key, state)
        if (scope, value) in self._held.get(state.flow_id, ()):
            return ADMITTED
        row = await self._pool.fetchrow(
            Q.slot_take, scope, value, state.flow_id, state.tenant_id, state.created_at,
            limit.limit,
        )  # fmt: skip
        assert row is not None
        if row["holding"]:
            if scope.startswith("flow:"):
                self._held.setdefault(state.flow_id, set()).add((scope, value))
            return ADMITTED
        ahead = int(row["ahead"])
        wait = NEAR_RECHECK if ahead < 2 * limit.limit else FAR_RECHECK
        return Admission(False, wait, f"concurrency {limit.key}={value}, {ahead} ahead")

    def wait(self, state: FlowState, seconds: float) -> Any:
        """The flow waits in its row for ``seconds`` (or until woken), released."""
        return self._pool.execute(Q.slot_wait, state.flow_id, seconds, state.version)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A limit a flow waits on, as its detail and the console say it."""

    limit: str
    """"concurrency" or "rate"."""
    of: str
    """"flow" (the definition's flows) or "node <key>"."""
    key: str | None
    value: str
    ahead: int
    running: int
    starts_at: datetime | None

    @property
    def reason(self) -> str:
        named = f"{self.key or 'key'}={self.value}"
        if self.limit == "rate":
            return f"rate limit {named} of {self.of}"
        scope = "" if self.of == "flow" else f" of {self.of}"
        return f"concurrency {named}{scope}, {self.ahead} ahead"


async def waiting_for(
    pool: Any, flow_id: str, definition: WorkflowDefinition | None
) -> list[Waiting]:
    """What a flow waits for (slots, reserved starts), for its detail and the console;
    ``definition`` (if known here) names the limits' keys."""
    return [waiting_of(row, definition) for row in await pool.fetch(Q.waiting_for, flow_id)]


def waiting_of(row: Any, definition: WorkflowDefinition | None) -> Waiting:
    """A waiter's row of ``flow_slots`` (with its ``ahead``, ``holders`` and ``starts_at``) in
    words; ``definition`` (when known here) names the limit's key."""
    kind, node_key = scope_parts(str(row["scope"]))
    return Waiting(
        "rate" if kind == "rate" else "concurrency",
        "flow" if node_key is None else f"node {node_key}",
        None if definition is None else _limit_key(definition, kind, node_key),
        row["key_value"], int(row["ahead"]), int(row["holders"]), row["starts_at"],
    )  # fmt: skip


def _limit_key(definition: WorkflowDefinition, kind: str, node_key: str | None) -> str | None:
    if node_key is None:
        return None if definition.concurrency is None else definition.concurrency.key
    node = definition.nodes.get(node_key)
    limit = None if node is None else (node.rate_limit if kind == "rate" else node.concurrency)
    return None if limit is None else limit.key
