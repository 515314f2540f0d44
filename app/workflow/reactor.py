"""The reactor: claims due flows, runs their nodes, records the outcomes.

Any number of reactors, in any number of processes, share the ``flow_work`` table:

- a claim takes due rows with ``FOR UPDATE SKIP LOCKED`` and leases them (database clock;
  the queue's statements: app/workflow/work.py);
- a claimed flow is driven node after node without going back to the queue: an outcome and
  the start of the next node are one append, so a transition costs one commit (one flow's
  drive: app/workflow/drive.py; a node's execution: app/workflow/execution.py);
- while an executor runs, one heartbeat per process extends the leases of all its flows and
  reports their status: a flow now Canceling has its executor interrupted, a flow whose lease
  was lost (taken by another worker after it expired) has its executor stopped;
- every append expects the version the worker read: a worker that lost its lease cannot
  change a flow (its append fails, and deciding again on the fresh state says "stale");
- a flow claimed with a sync node still running was abandoned by a lost worker: the node is
  recorded as interrupted and runs again as a new attempt (executors run at least once);
- NOTIFY (and local commits) wake the claim loop at once; a timer covers due times (retries,
  polls); a slow poll (``poll_interval``) covers lost notifications.

This module holds the reactor's lifecycle: its settings, its claim and heartbeat loops, and
the table of the drives it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from flowlog.eventstore import (
    TRANSIENT_ERRORS,
    EventStore,
    Listener,
    Notifier,
    RecordedEvent,
    wake_or_poll,
)
from flowlog.times import Clock, utc_now
from flowlog.workflow.activity import Activity, report
from flowlog.workflow.callbacks import CallbackTokens
from flowlog.workflow.commands import Command
from flowlog.workflow.definition import Registry
from flowlog.workflow.drive import Driver
from flowlog.workflow.execution import NodeRunner, Observer
from flowlog.workflow.parking import ParkingLot
from flowlog.workflow.reactor_settings import ReactorSettings
from flowlog.workflow.state import FlowState, FlowStatus
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.work import Claimed, WorkQueue

# Observer: the type of the reactor's ``observe`` argument, imported from here.
__all__ = ["Observer", "Reactor", "ReactorSettings", "worker_name"]

log = logging.getLogger(__name__)

_CANCEL_GRACE = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Reactor:
    def __init__(
        self,
        store: EventStore,
        registry: Registry,
        *,
        listener: Listener | None = None,
        settings: ReactorSettings | None = None,
        owner: str | None = None,
        clock: Clock = utc_now,
        observe: Observer | None = None,
        flows: FlowRepository | None = None,
        tokens: CallbackTokens | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        """``observe(definition, node, outcome, seconds)`` is told of every executor run;
        ``flows`` is a repository shared with the process's API (their appends commit
        together); ``notifier``: the process's, whose notifications the claim loop skips when
        a claim began after they were sent (it saw their commits)."""
        self._notifier = notifier
        self._pass_began = float("-inf")
        self.tokens = tokens or CallbackTokens(store.pool)
        self.store = store
        self.registry = registry
        self.settings = settings or ReactorSettings()
        self.owner = owner or worker_name()
        self.flows = flows or FlowRepository(store, clock)
        self.flows.limited = registry.limited
        self._listener = listener
        self._wake = asyncio.Event()
        self._drives: dict[str, asyncio.Task[None]] = {}
        self._per_definition: dict[str, int] = {}
        self._loops: list[asyncio.Task[None]] = []
        self.limit = self.settings.limit()
        """Flows this process may drive at once now (``limit.limit``)."""
        self.activity = Activity()
        self.work = WorkQueue(store.pool, self.owner, self.settings.lease_seconds)
        self.parking = ParkingLot(
            store,
            self.owner,
            lease_seconds=self.settings.lease_seconds,
            check_seconds=self.settings.heartbeat,
            poll_concurrency=self.settings.poll_concurrency,
            clock=clock,
            resume=self._resume,
        )
        self._nodes = NodeRunner(self.work, self.parking, self.tokens, self.activity, clock,
                                 observe, self.settings.poll_interval)  # fmt: skip
        self._driver = Driver(
            self.flows, registry, self.work, self.parking, self._nodes, self.activity, clock,
            room=lambda: self._free_slots() > 0, waited=self._waited,
        )  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="reactor-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="reactor-heartbeat"),
            asyncio.create_task(
                report(
                    self.activity,
                    self.owner,
                    self.settings.summary_seconds,
                    lambda: {"busy_flows": self.busy, "concurrency_limit": self.limit.limit},
                ),
                name="reactor-summary",
            ),
        ]
        for loop in self._loops:
            loop.add_done_callback(_report_crash)
        self.parking.start()
        log.info("reactor started", extra={"owner": self.owner})

    def poke(self) -> None:
        """Something was committed in this process: look for work now."""
        self._wake.set()

    async def stop(self) -> None:
        """Stops claiming, lets running nodes finish within the grace period, interrupts the
        rest, and hands back every lease so other reactors take over at once."""
        self._driver.stopping = True
        self._wake.set()
        claim = self._loops[0] if self._loops else None
        if claim is not None:
            await asyncio.gather(claim, return_exceptions=True)
        # Parked flows go back to their rows (due at their next polls) before the drives are
        # awaited: the lot hands no more flows to new drives.
        await self.parking.stop()
        drives = list(self._drives.values())
        if drives:
            _, late = await asyncio.wait(drives, timeout=self.settings.shutdown_grace)
            for task in late:
                task.cancel()
            if late:
                # An executor that swallows its cancellation must not hang the shutdown.
                await asyncio.wait(late, timeout=_CANCEL_GRACE)
        for loop in self._loops[1:]:
            loop.cancel()
        await asyncio.gather(*self._loops[1:], return_exceptions=True)
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.work.release_all()
        log.info(
            "reactor stopped", extra={"owner": self.owner, "nodes_run": self.activity.nodes_run}
        )

    @property
    def busy(self) -> int:
        return len(self._drives)

    # -- claiming ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        await wake_or_poll(
            self._claim_pass, wake=self._wake, listener=self._listener,
            stopping=lambda: self._driver.stopping, failed=_claim_failed, skip=self._seen,
        )  # fmt: skip

    def _seen(self, pid: int) -> bool:
        """Whether a notification (from server process ``pid``) is this process's own and
        tells of commits made before the last claim began: its claim saw them. A commit of this
        process's API pokes the loop itself; the notification came a second time, and cost a
        claim and a look at the next due row that found nothing."""
        notifier = self._notifier
        return (
            notifier is not None
            and pid in notifier.senders
            and self._pass_began > notifier.last_send
        )

    async def _claim_pass(self) -> float | None:
        """Claims what it can; the seconds to wait before the next claim: none when there may
        be more to claim, until woken when every slot is busy, else until the next due time."""
        self._pass_began = asyncio.get_running_loop().time()
        asked = self._free_slots()
        versions = self._claimable_versions() if asked > 0 else []
        if not versions:
            return None  # every slot is busy, or every definition at its limit: until woken
        claim = await self.work.claim(versions, asked)
        await self._start(claim.flows)
        if self._free_slots() <= 0:
            return None
        if len(claim.flows) >= asked:
            return 0.0  # there may be more: claim again before sleeping
        # Fewer than asked: nothing more was claimable (a claim takes every due row it can
        # lock, up to its limit), so another claim now would find nothing. A claim that took
        # some said when the next row is due, as the next-due query would, counted from when
        # the claim began (a timer must not fire late by the claim's own time).
        if claim.flows:
            due = claim.next_due
            if due is not None:
                due -= asyncio.get_running_loop().time() - self._pass_began
            return self._bounded(due)
        return await self._seconds_to_next_due()

    def _free_slots(self) -> int:
        return self.limit.limit - len(self._drives)

    def _waited(self, seconds: float, in_transition: int) -> None:
        """A drive's transition took ``seconds`` of the reactor's own time (its append, from
        asking to running again), with ``in_transition`` drives in one: the limit's signal."""
        before = self.limit.limit
        self.limit.sample(seconds, len(self._drives), in_transition, len(self._nodes.executing))
        if self.limit.limit > before:
            self._wake.set()  # room for more: claim now, not when a drive ends

    async def _start(self, claimed: Claimed) -> None:
        """Drives for the flows a claim took."""
        for flow_id, (name, events) in claimed.items():
            if flow_id in self._drives:
                # Our own lease had expired (a late heartbeat) and we took it again: the drive
                # that runs the flow goes on under the renewed lease.
                continue
            # Parked here but claimed again (its lease lapsed): a drive takes it over.
            self.parking.unpark(flow_id)
            limit = self.settings.definition_limits.get(name)
            if limit is not None and self._per_definition.get(name, 0) >= limit:
                await self.work.release(flow_id)
                continue
            self._spawn(flow_id, name, events)

    def _claimable_versions(self) -> list[str]:
        limits = self.settings.definition_limits
        versions = []
        for version in self.registry.versions():
            definition = self.registry.by_version(version)
            assert definition is not None
            limit = limits.get(definition.name)
            if limit is None or self._per_definition.get(definition.name, 0) < limit:
                versions.append(version)
        return versions

    async def _seconds_to_next_due(self) -> float:
        # Only versions this process may claim now: a definition at its limit would otherwise
        # look due at once and spin the loop.
        versions = self._claimable_versions()
        if not versions:
            return self.settings.poll_interval
        return self._bounded(await self.work.next_due(versions))

    def _bounded(self, seconds: float | None) -> float:
        """A wait until a row is due, within the claim loop's longest sleep."""
        if seconds is None:
            return self.settings.poll_interval
        return max(0.0, min(float(seconds), self.settings.poll_interval))

    def _spawn(
        self,
        flow_id: str,
        definition_name: str,
        events: list[RecordedEvent],
        state: FlowState | None = None,
        outcome: Command | None = None,
    ) -> None:
        self._per_definition[definition_name] = self._per_definition.get(definition_name, 0) + 1
        task = asyncio.create_task(
            self._driver.drive(flow_id, events, state, outcome), name=f"drive-{flow_id}"
        )
        self._drives[flow_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._drives.get(flow_id) is finished:
                del self._drives[flow_id]
            self._per_definition[definition_name] -= 1
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    def _resume(self, state: FlowState, outcome: Command | None) -> None:
        """A parked flow's poll came to an outcome (or the flow must be read again): a drive
        takes it from here."""
        running = self._drives.get(state.flow_id)
        if running is not None:
            # The drive that parked the flow has not quite ended: take over after it.
            running.add_done_callback(lambda _: self._resume(state, outcome))
            return
        self._spawn(state.flow_id, state.name, [], state if outcome else None, outcome)

    # -- heartbeat ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat)
            flow_ids = list(self._drives)
            if not flow_ids:
                continue
            # Judge only the executions running when we asked: one started while the query
            # ran was claimed after it and is missing from the answer for no fault of its own.
            asked = dict(self._nodes.executing)
            try:
                held = await self.work.heartbeat(flow_ids)
            except Exception as exc:  # the loop must outlive any one failure
                log.warning("heartbeat failed", extra={"error": repr(exc)})
                continue
            for flow_id, execution in asked.items():
                status = held.get(flow_id)
                if status is None:
                    execution.interrupt("lease lost")
                elif status == FlowStatus.CANCELING:
                    execution.interrupt("canceled")


def _claim_failed(exc: BaseException, wait: float) -> None:
    log.warning("claim failed", extra={"error": repr(exc), "retry_in": wait})


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("reactor loop died", exc_info=error, extra={"task": task.get_name()})
