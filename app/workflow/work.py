"""The work queue: one reactor's hold on the ``flow_work`` rows it claims and leases.

Rows are written by the appends themselves (app/workflow/store.py); a reactor only
claims them, extends its leases, hands them back, and puts off those it claimed too early.
Leases and due times are counted on the database's clock. Each method is one statement (one
round trip); those that need nothing from the answer return the pool's own awaitable.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import asyncpg

from flowlog.eventstore import RecordedEvent
from flowlog.workflow.queries import Q

RING_TENANTS = 16
"""Tenants a claim visits in turn (the oldest due flow of each), after those of the last."""

Claimed = dict[str, tuple[str, list[RecordedEvent]]]
"""Claimed flows: {flow id: (definition name, the flow's events)}."""


@dataclass(frozen=True, slots=True)
class Claim:
    flows: Claimed
    next_due: float | None
    """Seconds until the next row this claim did not take is claimable, as the next-due query
    would say (None: there is none, or the claim took nothing and did not look)."""


class WorkQueue:
    __slots__ = ("_ring_after", "lease_seconds", "owner", "pool")

    def __init__(self, pool: asyncpg.Pool, owner: str, lease_seconds: float) -> None:
        self.pool = pool
        self._ring_after = ""
        self.owner = owner
        self.lease_seconds = lease_seconds

    async def claim(self, versions: list[str], limit: int) -> Claim:
        """Leases up to ``limit`` due flows of definition ``versions``, with their events:
        the most urgent first, then the oldest due of each of the next tenants in turn (a
        ring that goes round from claim to claim), then the oldest due."""
        rows = await self.pool.fetch(
            Q.work_claim, self.owner, versions, limit, self.lease_seconds, self._ring_after,
            RING_TENANTS,
        )  # fmt: skip
        claimed: Claimed = {}
        for row in rows:
            flow = claimed.setdefault(row["flow_id"], (row["definition_name"], []))
            flow[1].append(RecordedEvent(*tuple(row)[4:]))
        self._ring_after = (rows[0]["ring_end"] if rows else None) or ""
        return Claim(claimed, rows[0]["next_due"] if rows else None)

    def next_due(self, versions: list[str]) -> Awaitable[float | None]:
        """Seconds until the next flow of ``versions`` is claimable; None when there is none."""
        return self.pool.fetchval(Q.work_next_due, versions)

    async def heartbeat(self, flow_ids: list[str]) -> dict[str, str]:
        """Extends the leases of ``flow_ids``: {flow id: status} of those still held."""
        rows = await self.pool.fetch(Q.work_heartbeat, self.owner, flow_ids, self.lease_seconds)
        return {row["flow_id"]: row["status"] for row in rows}

    def release(self, flow_id: str) -> Awaitable[str]:
        """Done with the flow for now: its row (if any) stays due at its due time."""
        return self.pool.execute(Q.work_release, self.owner, flow_id)

    def release_all(self) -> Awaitable[str]:
        return self.pool.execute(Q.work_release_all, self.owner)

    def defer(self, flow_id: str, seconds: float) -> Awaitable[str]:
        """Driving the flow crashed (a bug): it is looked at again in ``seconds``."""
        return self.pool.execute(Q.work_defer, self.owner, flow_id, seconds)

    def wait(self, flow_id: str, seconds: float, version: int) -> Awaitable[str]:
        """Claimed early (the database's clock ahead of ours): due in ``seconds`` by the
        database's clock, released; unless the flow moved on from stream ``version``."""
        return self.pool.execute(Q.work_wait, self.owner, flow_id, seconds, version)

    def reoffer(self, flow_id: str) -> Awaitable[str]:
        """The worker of a polling node's poll was lost (its task's lease lapsed): the poll is
        offered on its queue again, and the flow is no longer ours."""
        return self.pool.execute(Q.task_reoffer, self.owner, flow_id)
