"""The parking lot: polling nodes waiting on their operations, at almost no cost.

A flow whose polling node answered "still running" is parked in the memory of the process
that leased it, with its state and its next poll time. The lot polls it on its own timer: a
poll that changes nothing writes nothing and reads nothing, and holds no drive, so a process
can wait on tens of thousands of operations. When a poll has an outcome (done, failed, the
deadline passed), the flow goes back to a drive, which records it.

The flow stays leased to the process meanwhile, through its ``flow_work`` row:

- parking moves the row's due time and lease expiry to a lease from now (one write), so the
  row is out of the claimers' way (not due) and claimable by anyone once the lease lapses
  (the process died: another one polls it at once);
- every ``heartbeat`` the lot asks which of its rows changed lately (one read, answering only
  the changed ones: an operator stopped, canceled or retried a flow) and hands those flows to
  a drive, which reads them again and decides;
- the lease of each parked flow is renewed when a third of it is left (one write per flow
  per ``lease_seconds / 1.5``, all renewals due at the same time in one statement); a flow
  whose renewal finds it taken is dropped (its new holder polls it), and one not renewed for a
  whole lease is no longer polled here;
- on shutdown, the rows get their next poll times back and the leases are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowlog.eventstore import TRANSIENT_ERRORS, EventStore
from flowlog.times import Clock
from flowlog.workflow.commands import Command
from flowlog.workflow.definition import NodeDefinition
from flowlog.workflow.executor import Running
from flowlog.workflow.outcomes import poll_once
from flowlog.workflow.queries import Q
from flowlog.workflow.state import FlowState, NodeExecution

log = logging.getLogger(__name__)

_GATHER_SECONDS = 0.01
_CHANGE_MARGIN = 5.0
_POLL_TIMEOUT = 60.0

Resume = Callable[[FlowState, "Command | None"], None]
"""Hands a flow back to a drive: with the outcome of its poll to record, or with None when
the flow must be read again (it changed, or its lease is in doubt)."""


@dataclass(slots=True, eq=False)
class _Parked:
    state: FlowState
    running: NodeExecution
    node: NodeDefinition
    due: float
    """Loop time of the next poll."""
    renewed: float
    """Loop time the lease was last set."""


class ParkingLot:
    def __init__(
        self,
        store: EventStore,
        owner: str,
        *,
        lease_seconds: float,
        check_seconds: float,
        poll_concurrency: int,
        clock: Clock,
        resume: Resume,
    ) -> None:
        self._store = store
        self._owner = owner
        self._lease = lease_seconds
        # Renewed with a third of the lease left; a wait longer than that rests in the row.
        self._renew_after = lease_seconds * 2 / 3
        self._check = check_seconds
        self._clock = clock
        self._resume = resume
        self._limit = poll_concurrency
        self._parked: dict[str, _Parked] = {}
        self._timetable: list[tuple[float, int, _Parked]] = []
        self._order = 0
        self._wake = asyncio.Event()
        self._polls: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._closed = False
        self._checked = datetime(1970, 1, 1, tzinfo=UTC)
        self.polls = 0
        """Polls made by the lot (for metrics and the waiting benchmark)."""

    def closed(self) -> bool:
        """Whether ``stop()`` was called (a call: mypy must not assume it unchanged across an
        await)."""
        return self._closed

    def __len__(self) -> int:
        return len(self._parked)

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._parked

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._poll_loop(), name="parking-polls"),
            asyncio.create_task(self._lease_loop(), name="parking-leases"),
        ]

    async def stop(self) -> None:
        """Stops polling; the parked flows' rows get their next poll times back, released.
        Nothing is parked afterwards."""
        self._closed = True
        for task in [*self._loops, *self._polls]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._polls, return_exceptions=True)
        if not self._parked:
            return
        now, wall = asyncio.get_running_loop().time(), self._clock()
        ids = list(self._parked)
        dues = [wall + timedelta(seconds=max(0.0, self._parked[i].due - now)) for i in ids]
        self._parked.clear()
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self._store.pool.execute(Q.parked_release, self._owner, ids, dues)

    async def park(
        self, state: FlowState, running: NodeExecution, node: NodeDefinition, seconds: float
    ) -> bool:
        """Parks the flow (leased to this process, its node submitted) until its next poll in
        ``seconds``. False when nothing was parked: the row moved on since ``state``, or the
        lot is stopped (the drive releases the flow), or the next poll is further away than a
        lease renewal (the row is released, due then: a long wait costs one write, not a
        renewal every twenty seconds)."""
        flow_id = state.flow_id
        if self.closed():
            return False
        if self._rests_in_row(seconds):
            await self._rest(flow_id, state.version, seconds)
            return False
        parked = await self._store.pool.fetchval(
            Q.park, self._owner, flow_id, state.version, self._lease
        )
        if parked is None:
            return False
        if self.closed():  # stopped while the row was written: hand it back at once
            await self._store.pool.execute(
                Q.parked_release, self._owner, [flow_id], [self._clock()]
            )
            return False
        now = asyncio.get_running_loop().time()
        entry = _Parked(state, running, node, now + seconds, now)
        self._parked[flow_id] = entry
        self._schedule(entry)
        return True

    def _rests_in_row(self, seconds: float) -> bool:
        return seconds > self._renew_after

    async def _rest(self, flow_id: str, version: int, seconds: float) -> None:
        due = self._clock() + timedelta(seconds=seconds)
        await self._store.pool.execute(Q.rest_until, self._owner, flow_id, due, version)

    def unpark(self, flow_id: str) -> None:
        """Forgets the flow (a drive of this process has it again)."""
        self._parked.pop(flow_id, None)

    # -- polling -----------------------------------------------------------------------------

    def _schedule(self, entry: _Parked) -> None:
        self._order += 1
        heapq.heappush(self._timetable, (entry.due, self._order, entry))
        if self._timetable[0][2] is entry:
            self._wake.set()

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            # Polls due within the next few milliseconds go now: one wake-up serves many
            # flows (10,000 parked at 3 s are 3,333 polls a second).
            now = loop.time() + _GATHER_SECONDS
            while (
                self._timetable and self._timetable[0][0] <= now and len(self._polls) < self._limit
            ):
                _, _, entry = heapq.heappop(self._timetable)
                flow_id = entry.state.flow_id
                if self._parked.get(flow_id) is not entry:
                    continue  # unparked, or parked anew
                if loop.time() - entry.renewed >= self._lease:
                    # Not renewed for a whole lease (the database failed the renewals): the
                    # lease may be another process's now, and so are the polls.
                    del self._parked[flow_id]
                    continue
                self._polls.add(asyncio.create_task(self._poll(entry)))
            # A timer, not wait_any: that one makes two tasks per wait.
            timer = None
            if self._timetable and len(self._polls) < self._limit:
                timer = loop.call_at(self._timetable[0][0], self._wake.set)
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    async def _poll(self, entry: _Parked) -> None:
        flow_id = entry.state.flow_id
        try:
            self.polls += 1
            async with asyncio.timeout(max(_POLL_TIMEOUT, entry.node.poll_interval)):
                outcome = await poll_once(entry.state, entry.running, entry.node, self._clock())
        except TimeoutError:
            # A poll that hangs must not hold a slot for ever: asked again next interval.
            log.warning("poll timed out", extra={"flow_id": flow_id})
            outcome = Running()
        except Exception:  # poll_once maps the executor's errors: this is a bug of ours
            log.exception("poll crashed", extra={"flow_id": flow_id})
            outcome = None
        finally:
            self._polls.discard(asyncio.current_task())
            if len(self._polls) == self._limit - 1:
                self._wake.set()  # a poll slot is free again
        if self._parked.get(flow_id) is not entry:
            return  # unparked while it polled: whoever has the flow now decides
        if isinstance(outcome, Running):
            interval = entry.node.poll_interval
            if self._rests_in_row(interval):
                del self._parked[flow_id]
                with contextlib.suppress(*TRANSIENT_ERRORS):  # else the lease lapses: polled then
                    await self._rest(flow_id, entry.state.version, interval)
                return
            entry.due = asyncio.get_running_loop().time() + interval
            self._schedule(entry)
            return
        del self._parked[flow_id]
        self._resume(entry.state, outcome)

    # -- leases ------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self._check)
            if not self._parked:
                continue
            try:
                await self._check_leases()
            except Exception as exc:  # the loop must outlive any one failure
                log.warning("parked flows' check failed", extra={"error": repr(exc)})

    async def _check_leases(self) -> None:
        loop = asyncio.get_running_loop()
        # Asked with a margin (a transaction that started before the last check may commit
        # after it): a change seen twice is compared with the parked version, so it counts
        # once; one missed by the margin is found by the next renewal.
        since = self._checked - timedelta(seconds=_CHANGE_MARGIN)
        row = await self._store.pool.fetchrow(Q.parked_changed, self._owner, since)
        assert row is not None
        self._checked = row["checked_at"]
        for flow_id, version in zip(row["flow_ids"], row["versions"], strict=True):
            entry = self._parked.get(flow_id)
            if entry is not None and entry.state.version != version:
                self._hand_back(flow_id)
        now = loop.time()
        due = [e for e in self._parked.values() if now - e.renewed >= self._renew_after]
        if not due:
            return
        rows = await self._store.pool.fetch(
            Q.parked_renew,
            self._owner,
            [e.state.flow_id for e in due],
            [e.state.version for e in due],
            self._lease,
        )
        renewed = {row["flow_id"] for row in rows}
        for entry in due:
            if entry.state.flow_id in renewed:
                entry.renewed = now
            elif self._parked.get(entry.state.flow_id) is entry:
                # Changed (the change check hands those back) or taken by another process:
                # not ours to drive. Dropped; if it was ours after all, its lease lapses and
                # whoever claims it then polls it.
                del self._parked[entry.state.flow_id]

    def _hand_back(self, flow_id: str) -> None:
        entry = self._parked.pop(flow_id, None)
        if entry is not None:
            self._resume(entry.state, None)
