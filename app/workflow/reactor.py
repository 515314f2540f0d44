"""The reactor: claims due flows, runs their nodes, records the outcomes.

Any number of reactors, in any number of processes, share the ``flow_work`` table:

- a claim takes due rows with ``FOR UPDATE SKIP LOCKED`` and leases them (database clock);
- a claimed flow is driven node after node without going back to the queue: an outcome and
  the start of the next node are one append, so a transition costs one commit;
- while an executor runs, one heartbeat per process extends the leases of all its flows and
  reports their status: a flow now Canceling has its executor interrupted, a flow whose lease
  was lost (taken by another worker after it expired) has its executor stopped;
- every append expects the version the worker read: a worker that lost its lease cannot
  change a flow (its append fails, and deciding again on the fresh state says "stale");
- a flow claimed with a sync node still running was abandoned by a lost worker: the node is
  recorded as interrupted and runs again as a new attempt (executors run at least once);
- NOTIFY (and local commits) wake the claim loop at once; a timer covers due times (retries,
  polls); a slow poll (``poll_interval``) covers lost notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowlog.eventstore import (
    TRANSIENT_ERRORS,
    EventStore,
    Listener,
    RecordedEvent,
    WrongExpectedVersion,
    wait_any,
)
from flowlog.telemetry import TRACEPARENT, tracing
from flowlog.workflow.activity import Activity, report
from flowlog.workflow.callbacks import CallbackTokens, token_id
from flowlog.workflow.decide import (
    Advance,
    Command,
    Interrupt,
    RecordCanceled,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RecordWaiting,
    StaleOutcome,
    Wake,
    decide,
    decide_and_advance,
    due_at,
)
from flowlog.workflow.definition import NodeDefinition, NodeKind, Registry, WorkflowDefinition
from flowlog.workflow.errors import Code, NodeError
from flowlog.workflow.events import FlowEvent, NodeStarted
from flowlog.workflow.executor import FlowContext, Running
from flowlog.workflow.outcomes import (
    call,
    failure,
    handle_of,
    poll_once,
    storable,
    success,
    wake_time,
)
from flowlog.workflow.parking import ParkingLot
from flowlog.workflow.repository import Caller, Clock, FlowRepository, Q, utc_now
from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution

log = logging.getLogger(__name__)


def trace_parent(recorded: Sequence[RecordedEvent]) -> str | None:
    """The trace context of the latest request that appended to the flow (its node spans'
    parent): the creating or starting request, a retry, a callback's completion."""
    for event in reversed(recorded):
        found = event.metadata.get(TRACEPARENT)
        if isinstance(found, str):
            return found
    return None


_RECORD_ATTEMPTS = 20
_TRANSIENT_PATIENCE = 10.0
"""Seconds a drive keeps retrying after the database failed under it (at least; its lease,
when longer)."""
_CRASH_DEFER_SECONDS = 30.0
_CANCEL_GRACE = 5.0
_LOOP_RETRY_MAX = 5.0
_WAKE_SLACK = 1.0
"""A waiting node claimed this many seconds or less before its time (the database's clock
ahead of ours) is waited for here, rather than released to be claimed again at once."""


@dataclass(frozen=True, slots=True)
class ReactorSettings:
    concurrency: int = 32
    """Flows driven at once by this process (executors running or being recorded)."""
    lease_seconds: float = 30.0
    """How long a claim lasts without a heartbeat; a dead worker's flows wait this long."""
    heartbeat_seconds: float = 1.0
    """Heartbeat period (capped at a third of the lease); also how soon a cancel interrupts."""
    poll_interval: float = 2.0
    """The longest the claim loop sleeps without a notification."""
    shutdown_grace: float = 10.0
    """On stop, how long running nodes may take to finish before they are interrupted."""
    definition_limits: Mapping[str, int] = field(default_factory=dict)
    """Optional per-definition caps on flows driven at once by this process."""
    summary_seconds: float = 60.0
    """How often the reactor logs a summary line of what it did (INFO)."""
    poll_concurrency: int = 64
    """Polls of parked flows (polling nodes waiting on their operations) run at once."""

    @property
    def heartbeat(self) -> float:
        return min(self.heartbeat_seconds, self.lease_seconds / 3)


Observer = Callable[[str, str, str, float], None]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(slots=True)
class _Doing:
    """The node a drive is at and the outcome it is recording: what the log line of a step
    that crashed names."""

    node: NodeExecution | None = None
    recording: Command | None = None


class _Execution:
    """An executor running in this process, and why it was interrupted (if it was)."""

    def __init__(self, node_id: str, task: asyncio.Future[Any]) -> None:
        self.node_id = node_id
        self.task = task
        self.interrupted_because: str | None = None

    def interrupt(self, because: str) -> None:
        if self.interrupted_because is None and not self.task.done():
            self.interrupted_because = because
            self.task.cancel()


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
    ) -> None:
        """``observe(definition, node, outcome, seconds)`` is told of every executor run;
        ``flows`` is a repository shared with the process's API (their appends commit
        together)."""
        self.tokens = tokens or CallbackTokens(store.pool)
        self.store = store
        self._observe = observe
        self.registry = registry
        self.settings = settings or ReactorSettings()
        self.owner = owner or worker_name()
        self.flows = flows or FlowRepository(store, clock)
        self._clock = clock
        self._listener = listener
        self._caller = Caller(actor=f"reactor:{self.owner}")
        self._wake = asyncio.Event()
        self._stopping = False
        self._drives: dict[str, asyncio.Task[None]] = {}
        self._executing: dict[str, _Execution] = {}
        self._per_definition: dict[str, int] = {}
        self._loops: list[asyncio.Task[None]] = []
        self.activity = Activity()
        self.parking = ParkingLot(
            store,
            self.owner,
            lease_seconds=self.settings.lease_seconds,
            check_seconds=self.settings.heartbeat,
            poll_concurrency=self.settings.poll_concurrency,
            clock=clock,
            resume=self._resume,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="reactor-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="reactor-heartbeat"),
            asyncio.create_task(
                report(self.activity, self.owner, self.settings.summary_seconds, lambda: self.busy),
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
        self._stopping = True
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
            await self.store.pool.execute(Q.work_release_all, self.owner)
        log.info(
            "reactor stopped", extra={"owner": self.owner, "nodes_run": self.activity.nodes_run}
        )

    @property
    def busy(self) -> int:
        return len(self._drives)

    # -- claiming ----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        notified = self._listener.register() if self._listener is not None else None
        failures = 0
        try:
            while not self._stopping:
                self._wake.clear()
                if notified is not None:
                    notified.clear()
                try:
                    claimed, full = await self._claim()
                    wait = None if full else await self._seconds_to_next_due()
                    failures = 0
                except Exception as exc:  # the loop must outlive any one failure
                    failures += 1
                    wait = min(_LOOP_RETRY_MAX, 0.05 * 2**failures)
                    log.warning("claim failed", extra={"error": repr(exc), "retry_in": wait})
                    claimed, full = 0, False
                if claimed and not full and self._free_slots() > 0:
                    continue  # there may be more: claim again before sleeping
                events = [self._wake] if notified is None else [self._wake, notified]
                await wait_any(events, wait if not full else None)
        finally:
            if notified is not None and self._listener is not None:
                self._listener.unregister(notified)

    def _free_slots(self) -> int:
        return self.settings.concurrency - len(self._drives)

    async def _claim(self) -> tuple[int, bool]:
        """Claims up to the free slots; returns (how many, whether all slots are now busy)."""
        free = self._free_slots()
        if free <= 0:
            return 0, True
        versions = self._claimable_versions()
        if not versions:
            return 0, True
        rows = await self.store.pool.fetch(
            Q.work_claim, self.owner, versions, free, self.settings.lease_seconds
        )
        claimed: dict[str, tuple[str, list[RecordedEvent]]] = {}
        for row in rows:
            flow = claimed.setdefault(row["flow_id"], (row["definition_name"], []))
            flow[1].append(RecordedEvent(*tuple(row)[2:]))
        for flow_id, (name, events) in claimed.items():
            if flow_id in self._drives:
                # Our own lease had expired (a late heartbeat) and we took it again: the drive
                # that runs the flow goes on under the renewed lease.
                continue
            # Parked here but claimed again (its lease lapsed): a drive takes it over.
            self.parking.unpark(flow_id)
            limit = self.settings.definition_limits.get(name)
            if limit is not None and self._per_definition.get(name, 0) >= limit:
                await self.store.pool.execute(Q.work_release, self.owner, flow_id)
                continue
            self._spawn(flow_id, name, events)
        return len(claimed), self._free_slots() <= 0

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
        seconds = await self.store.pool.fetchval(Q.work_next_due, versions)
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
            self._drive(flow_id, events, state, outcome), name=f"drive-{flow_id}"
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
            asked = dict(self._executing)
            try:
                rows = await self.store.pool.fetch(
                    Q.work_heartbeat, self.owner, flow_ids, self.settings.lease_seconds
                )
            except Exception as exc:  # the loop must outlive any one failure
                log.warning("heartbeat failed", extra={"error": repr(exc)})
                continue
            held = {row["flow_id"]: row["status"] for row in rows}
            for flow_id, execution in asked.items():
                status = held.get(flow_id)
                if status is None:
                    execution.interrupt("lease lost")
                elif status == FlowStatus.CANCELING:
                    execution.interrupt("canceled")

    # -- driving one flow --------------------------------------------------------------------

    async def _drive(
        self,
        flow_id: str,
        claimed_with: list[RecordedEvent],
        resumed: FlowState | None = None,
        outcome: Command | None = None,
    ) -> None:
        """Moves one claimed flow forward as far as it can go now, then releases it (or
        leaves it parked, still leased, when it waits on a polling node's operation).

        ``claimed_with`` are the flow's events read by the claim itself; a flow coming back
        from the parking lot comes with its ``resumed`` state and the ``outcome`` of its poll.
        When the database fails under it (a cut connection, a restart), the drive reads the
        flow again and goes on, for as long as its lease would last: what it started and what
        its executors returned are still its own, and are recorded once the database is back.
        """
        release = True
        # Node executions this drive started and has not run yet. They survive a transient
        # error: an append whose reply was lost may have committed, and its node is ours to
        # run, not an abandoned one to interrupt.
        started_here: set[str] = set()
        # Outcomes of executors that ran here, until they are recorded: a transient error
        # while recording must not throw a finished run away and run the node again.
        outcomes: dict[str, Command] = {}
        if resumed is not None and outcome is not None and resumed.running_node is not None:
            outcomes[resumed.running_node.node_id] = outcome
        loop = asyncio.get_running_loop()
        give_up_at: float | None = None
        attempt = 0
        doing = _Doing()
        try:
            while True:
                try:
                    if attempt == 0 and resumed is not None:
                        state, recorded = resumed, []
                    elif attempt == 0 and claimed_with:
                        state, recorded = self.flows.fold(claimed_with), claimed_with
                    else:
                        state, recorded = await self.flows.load_with_events(flow_id)
                    started_here &= {
                        e.data["node_id"]
                        for e in recorded
                        if e.type == "NodeStarted" and e.metadata.get("actor") == self._caller.actor
                    }
                    parent = trace_parent(recorded) if tracing().enabled else None
                    final = await self._advance(state, started_here, outcomes, parent, doing)
                    # Our last append deleted the work row (the flow ended, or stopped with
                    # nothing running): there is no lease left to hand back.
                    release = flow_id not in self.parking and (
                        final is None or due_at(final, self._clock()) is not None
                    )
                    return
                except TRANSIENT_ERRORS as exc:
                    # An append may have committed before the error: re-read and decide again.
                    # Within the lease no one else may take the flow, so keep trying that long
                    # (the expected version protects the flow if someone did anyway).
                    attempt += 1
                    if give_up_at is None:
                        give_up_at = loop.time() + max(_TRANSIENT_PATIENCE,
                                                       self.settings.lease_seconds)  # fmt: skip
                    delay = min(2.0, 0.05 * 2**attempt)
                    if loop.time() + delay > give_up_at:
                        log.warning(
                            "flow step failed, giving the flow up",
                            extra={"flow_id": flow_id, "error": repr(exc), "attempts": attempt},
                        )
                        return
                    log.warning(
                        "flow step failed, retrying",
                        extra={"flow_id": flow_id, "error": repr(exc), "retry_in": delay},
                    )
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug (in an executor's result handling, or in flowlog): do not spin on the flow.
            # Its node runs again once the lease is over, and after max_interruptions such runs
            # it fails as a lost worker's (40110): this line is where the cause is told.
            node, recording = doing.node, doing.recording
            log.exception(
                "flow step crashed",
                extra={
                    "flow_id": flow_id,
                    "node_id": None if node is None else node.node_id,
                    "node": None if node is None else node.name,
                    "attempt": None if node is None else node.attempt,
                    "recording": None if recording is None else type(recording).__name__,
                },
            )
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self.store.pool.execute(
                    Q.work_defer, self.owner, flow_id, _CRASH_DEFER_SECONDS
                )
        finally:
            if release:
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await self.store.pool.execute(Q.work_release, self.owner, flow_id)

    async def _advance(
        self,
        state: FlowState,
        started_here: set[str],
        outcomes: dict[str, Command],
        parent: str | None,
        doing: _Doing,
    ) -> FlowState | None:
        """Drives the flow until it waits or ends; returns the last state it knew, or None
        when it stopped because the flow is no longer its to drive."""
        definition = self.registry.get_version(state.name, state.definition_version)
        claimed = state.version  # the flow as the claim (or the parking lot) handed it over
        while True:
            running = state.running_node
            doing.node, doing.recording = running, None
            command: Command | None
            if running is None:
                if self._stopping:
                    return state  # shutting down: start nothing new
                events = decide(state, Advance(), definition, self._clock())
                if not events:
                    if state.version == claimed and await self._retry_early(state):
                        return None  # claimed before its retry's time: deferred, not ours
                    return state  # nothing to do now: the work row says when to look again
                state, _ = await self._append(state, events, started_here)
                continue
            node = definition.node(running.key)
            if running.node_id in outcomes:
                command = outcomes[running.node_id]  # ran here; recording it failed before
            elif running.waiting and state.status is not FlowStatus.CANCELING:
                if not await self._time_came(state, running):
                    return None  # claimed early: deferred to its time, no longer ours
                command = Wake(running.node_id)
            elif running.node_id in started_here and state.status is not FlowStatus.CANCELING:
                started_here.discard(running.node_id)
                command = await self._execute(state, running, node, parent)
                if command is not None:
                    outcomes[running.node_id] = command
            elif state.status is FlowStatus.CANCELING or running.operation_id is None:
                # Canceled while not executing here, or abandoned by a lost worker.
                command = Interrupt(running.node_id)
            else:
                command = await self._poll(state, running, node)
            if command is None:
                return None
            # The one door of executors' and polls' outcomes into the log: an answer it cannot
            # hold fails the node here (40134), instead of failing the append after every run.
            command = storable(command)
            doing.recording = command
            recorded = await self._record(state, command, definition, started_here)
            outcomes.pop(running.node_id, None)  # recorded, or no longer ours to record
            if recorded is None:
                return None
            state = recorded
            if isinstance(command, RecordWaiting):
                return state  # it waits holding nothing: its row says when to look again

    async def _append(
        self, state: FlowState, events: list[FlowEvent], started_here: set[str]
    ) -> tuple[FlowState, bool]:
        """Appends; the nodes these events start are ours to run. When the flow moved
        meanwhile: (the fresh state, False), and nothing is ours."""
        starting = {e.node_id for e in events if isinstance(e, NodeStarted)}
        started_here |= starting  # before the append: its reply may be lost after the commit
        try:
            appended = await self.flows.append(state, events, self._caller, background=True)
        except WrongExpectedVersion:
            started_here -= starting
            return await self.flows.load(state.flow_id), False
        self.activity.recorded(events)
        return appended, True

    async def _record(
        self,
        state: FlowState,
        command: Command,
        definition: WorkflowDefinition,
        started_here: set[str],
    ) -> FlowState | None:
        """Records an outcome; when the flow moved meanwhile, decides again on the fresh state.

        None: the outcome is stale (another worker owns the node now), stop driving.
        """
        for _ in range(_RECORD_ATTEMPTS):
            # While shutting down, record the outcome but start no next node.
            choose = decide if self._stopping else decide_and_advance
            try:
                events = choose(state, command, definition, self._clock())
            except StaleOutcome:
                log.info(
                    "outcome dropped: the node is no longer ours",
                    extra={"flow_id": state.flow_id, "command": type(command).__name__},
                )
                return None
            if not events:
                return state
            state, appended = await self._append(state, events, started_here)
            if appended:
                return state
        log.warning(
            "outcome not recorded: the flow kept changing", extra={"flow_id": state.flow_id}
        )
        return None

    # -- running nodes -----------------------------------------------------------------------

    async def _execute(
        self, state: FlowState, running: NodeExecution, node: NodeDefinition, parent: str | None
    ) -> Command | None:
        started = time.perf_counter()
        tracer = tracing()
        if not tracer.enabled:  # the common case: no span to make, nothing to describe
            command = await self._run_executor(state, running, node)
        else:
            with tracer.node(parent, _span_attributes(state, running)) as span:
                command = await self._run_executor(state, running, node)
                span.set("flowlog.outcome", _outcome(command))
        seconds = time.perf_counter() - started
        if self._observe is not None:
            self._observe(state.name, running.name, _outcome(command), seconds)
        log.debug(
            "node ran",
            extra={"flow_id": state.flow_id, "node": running.name, "attempt": running.attempt,
                   "outcome": _outcome(command), "ms": round(seconds * 1000, 2),
                   "trace_id": state.context.get(FlowContext.TRACE_ID)},
        )  # fmt: skip
        return command

    async def _run_executor(
        self, state: FlowState, running: NodeExecution, node: NodeDefinition
    ) -> Command | None:
        token = None
        if node.kind is NodeKind.CALLBACK:
            token = await self.tokens.token(running.node_id, state.tenant_id)
        handle = handle_of(state, running, token)
        context = FlowContext(state.context)
        task = asyncio.ensure_future(call(node, handle, context))
        execution = _Execution(running.node_id, task)
        self._executing[state.flow_id] = execution
        self.activity.nodes_run += 1
        extra = {"flow_id": state.flow_id, "node": running.name, "attempt": running.attempt,
                 "trace_id": context.trace_id}  # fmt: skip
        try:
            value = await task
        except asyncio.CancelledError:
            if execution.interrupted_because is None:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the reactor itself is shutting down
                # The executor raised CancelledError of its own accord: a failure like any other.
                return failure(running, handle, context, Code.NODE_FAILED,
                               "the executor raised CancelledError")  # fmt: skip
            log.info(
                "executor interrupted", extra={**extra, "because": execution.interrupted_because}
            )
            if execution.interrupted_because == "canceled":
                return RecordCanceled(running.node_id)
            return None  # the lease is lost: whoever holds it now decides
        except TimeoutError:
            return failure(running, handle, context, Code.NODE_TIMEOUT,
                           f"node {running.name} timed out after {node.timeout} s")  # fmt: skip
        except NodeError as exc:
            return failure(running, handle, context, exc.code, exc.message)
        except Exception as exc:
            log.info("executor failed", extra={**extra, "error": repr(exc)})
            return failure(
                running, handle, context, Code.NODE_FAILED, f"{type(exc).__name__}: {exc}"
            )
        finally:
            if self._executing.get(state.flow_id) is execution:
                del self._executing[state.flow_id]
        if node.kind is NodeKind.TIMER:
            try:
                wake_at = wake_time(value, self._clock())
            except (ValueError, OverflowError) as exc:
                return failure(running, handle, context, Code.NODE_FAILED, str(exc))
            return RecordWaiting(running.node_id, wake_at, None, context.changes, context.removed)
        if token is not None:
            return RecordWaiting(running.node_id, None, token_id(token), context.changes,
                                 context.removed)  # fmt: skip
        if node.kind is NodeKind.POLLING:
            if not isinstance(value, str) or not value:
                message = "a polling node's executor must return an operation id"
                return failure(running, handle, context, Code.NODE_FAILED, message)
            return RecordSubmitted(running.node_id, value, context.changes, context.removed)
        if value is not None:
            handle.record(value)
        return success(running, handle, context)

    async def _retry_early(self, state: FlowState) -> bool:
        """A flow claimed before its retry's time (the database's clock ahead of ours) is
        deferred by what is left, on the database's clock, as a waiting node is (_time_came);
        True when it was. Claimed on time, nothing is written."""
        last = state.last_node
        if last is None or not last.will_retry or last.retry_at is None:
            return False
        early = (last.retry_at - self._clock()).total_seconds()
        if early <= 0 or state.status is not FlowStatus.PROCESSING:
            return False
        await self.store.pool.execute(Q.work_wait, self.owner, state.flow_id, early,
                                      state.version)  # fmt: skip
        return True

    async def _time_came(self, state: FlowState, running: NodeExecution) -> bool:
        """Whether a waiting node's time (a timer's, a callback's deadline) has come; one a
        little early is waited for. Rows are claimed by the database's clock and due times
        written by this process's: claimed earlier than that (the database's clock ahead), the
        row is deferred by what is left, on the database's clock, so that it is not claimable
        again at once (the claim loop would spin until the clocks agree)."""
        due = running.wake_at or running.deadline
        early = 0.0 if due is None else (due - self._clock()).total_seconds()
        if due is None or early > _WAKE_SLACK:
            wait = self.settings.poll_interval if due is None else early
            await self.store.pool.execute(Q.work_wait, self.owner, state.flow_id, wait,
                                          state.version)  # fmt: skip
            return False
        if early > 0:
            await asyncio.sleep(early)
        return True

    async def _poll(
        self, state: FlowState, running: NodeExecution, node: NodeDefinition
    ) -> Command | None:
        """Polls the node's operation when it is time: its outcome to record, or None when the
        flow was parked to wait (or moved on meanwhile: no longer this drive's)."""
        now = self._clock()
        deadline_passed = running.poll_deadline is not None and now >= running.poll_deadline
        if running.next_poll_at is not None and now < running.next_poll_at and not deadline_passed:
            wait = (running.next_poll_at - now).total_seconds()
        else:
            outcome = await poll_once(state, running, node, now)
            if not isinstance(outcome, Running):
                return outcome
            wait = node.poll_interval
        await self.parking.park(state, running, node, wait)
        return None


def _outcome(command: Command | None) -> str:
    match command:
        case RecordSuccess() | RecordSubmitted() | RecordWaiting():
            return "success"
        case RecordFailure(code=Code.NODE_TIMEOUT):
            return "timeout"
        case RecordFailure():
            return "failure"
        case RecordCanceled():
            return "canceled"
    return "interrupted"


def _span_attributes(state: FlowState, running: NodeExecution) -> dict[str, str | int]:
    return {
        "flowlog.flow_id": state.flow_id, "flowlog.definition": state.name,
        "flowlog.node": running.name, "flowlog.node_key": running.key,
        "flowlog.node_id": running.node_id, "flowlog.attempt": running.attempt,
    }  # fmt: skip


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("reactor loop died", exc_info=error, extra={"task": task.get_name()})
