"""One flow's drive: a claimed flow moved forward node after node, until it waits or ends.

A drive decides on the state it read and appends with that state's version expected; when
the flow moved meanwhile, it decides again on the fresh state. A node the drive started is
run here (app/workflow/execution.py); a sync node found running that it did not start was
abandoned by a lost worker, and is recorded as interrupted. When the database fails under it,
the drive reads the flow again and goes on, for as long as its lease would last, keeping what
it started and what its executors returned. The reactor as a whole: app/workflow/reactor.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flowlog.eventstore import TRANSIENT_ERRORS, RecordedEvent, WrongExpectedVersion
from flowlog.telemetry import TRACEPARENT, tracing
from flowlog.times import Clock
from flowlog.workflow.activity import Activity
from flowlog.workflow.admission import Admission, Gate
from flowlog.workflow.caller import Caller
from flowlog.workflow.children import ChildRunner
from flowlog.workflow.commands import Advance, Command, Interrupt, RecordWaiting, Wake
from flowlog.workflow.decide import decide, decide_and_advance
from flowlog.workflow.definition import CHILD_KINDS, Registry, WorkflowDefinition
from flowlog.workflow.errors import StaleOutcome
from flowlog.workflow.events import FlowEvent, NodeStarted
from flowlog.workflow.execution import NodeRunner
from flowlog.workflow.node_decisions import due_at
from flowlog.workflow.outcomes import storable
from flowlog.workflow.parking import ParkingLot
from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution
from flowlog.workflow.store import FlowRepository, Harvested
from flowlog.workflow.work import WorkQueue

# The reactor's modules log under one name, the one operators filter on.
log = logging.getLogger("flowlog.workflow.reactor")

_RECORD_ATTEMPTS = 20
_TRANSIENT_PATIENCE = 10.0
"""Seconds a drive keeps retrying after the database failed under it (at least; its lease,
when longer)."""
_CRASH_DEFER_SECONDS = 30.0


def trace_parent(recorded: Sequence[RecordedEvent]) -> str | None:
    """The trace context of the latest request that appended to the flow (its node spans'
    parent): the creating or starting request, a retry, a callback's completion."""
    for event in reversed(recorded):
        found = event.metadata.get(TRACEPARENT)
        if isinstance(found, str):
            return found
    return None


@dataclass(slots=True)
class _Doing:
    """The node a drive is at and the outcome it is recording: what the log line of a step
    that crashed names."""

    node: NodeExecution | None = None
    recording: Command | None = None


class Driver:
    """Drives the flows one reactor claimed (or took back from its parking lot)."""

    __slots__ = (
        "_activity", "_caller", "_children", "_clock", "_flows", "_gate", "_nodes", "_parking",
        "_registry", "_waited", "_work", "in_transition", "stopping",
    )  # fmt: skip

    def __init__(
        self,
        flows: FlowRepository,
        registry: Registry,
        work: WorkQueue,
        parking: ParkingLot,
        nodes: NodeRunner,
        activity: Activity,
        clock: Clock,
        room: Callable[[], bool] = lambda: False,
        gate: Gate | None = None,
        waited: Callable[[float, int], None] = lambda seconds, in_transition: None,
    ) -> None:
        """``room()``: whether this process has a free slot (a node that runs children may
        then hold its flow to count its children's ends as they come); ``waited(seconds,
        in_transition)`` is told how long each append of a drive took, from asking to running
        again, and how many drives were in such a wait then, this one too (the reactor's
        concurrency limit is steered by it)."""
        self._flows = flows
        self._registry = registry
        self._work = work
        self._parking = parking
        self._nodes = nodes
        self._activity = activity
        self._clock = clock
        self._waited = waited
        self.in_transition = 0
        """Drives asking for an append now, not running again yet."""
        self._caller = Caller(actor=f"reactor:{work.owner}")
        self._gate = gate or Gate(work.pool)
        self._children = ChildRunner(
            flows, registry, self._caller, clock, lambda: room() and not self.stopping
        )
        self.stopping = False
        """Set when the reactor stops: drives start no new node."""

    async def drive(
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
                        state, recorded = self._flows.fold(claimed_with), claimed_with
                    else:
                        state, recorded = await self._flows.load_with_events(flow_id)
                    started_here &= {
                        e.data["node_id"]
                        for e in recorded
                        if e.type == "NodeStarted" and e.metadata.get("actor") == self._caller.actor
                    }
                    parent = trace_parent(recorded) if tracing().enabled else None
                    final = await self._advance(state, started_here, outcomes, parent, doing)
                    # Our last append deleted the work row (the flow ended, or stopped with
                    # nothing running): there is no lease left to hand back.
                    release = flow_id not in self._parking and (
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
                                                       self._work.lease_seconds)  # fmt: skip
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
                await self._work.defer(flow_id, _CRASH_DEFER_SECONDS)
        finally:
            self._gate.forget(flow_id)
            if release:
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await self._work.release(flow_id)

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
        definition = self._registry.get_version(state.name, state.definition_version)
        claimed = state.version  # the flow as the claim (or the parking lot) handed it over
        nodes = self._nodes
        while True:
            if state.definition_version != definition.version:
                moved = self._migrated(state)
                if moved is None:
                    return state  # let it go, to a reactor that has its version
                definition = moved
            running = state.running_node
            doing.node, doing.recording = running, None
            command: Command | None
            if running is None:
                if self.stopping:
                    return state  # shutting down: start nothing new
                events = decide(state, Advance(), definition, self._clock())
                if not events:
                    if state.version == claimed and await nodes.retry_early(state):
                        return None  # claimed before its retry's time: deferred, not ours
                    return state  # nothing to do now: the work row says when to look again
                events, wait = await self._admitted(state, events, definition)
                if wait is not None:
                    await self._wait(state, wait)
                    return None  # waits in its row: no longer ours
                state, _ = await self._append(state, events, started_here)
                continue
            node = definition.node(running.key)
            if node.kind in CHILD_KINDS and running.node_id not in outcomes:

                async def append(
                    at: FlowState, events: list[FlowEvent], harvest: Sequence[Harvested]
                ) -> tuple[FlowState, bool]:
                    # A parent's appends go in the requests' lane, not behind the batches of
                    # its own children's outcomes: its window of children is refilled only as
                    # fast as they commit.
                    return await self._append(at, events, started_here, harvest,
                                              background=False)  # fmt: skip

                state, command = await self._children.step(state, node, definition, append)
                if command is None:
                    now_running = state.running_node
                    if now_running is None or now_running.node_id != running.node_id:
                        continue  # the node ended; what follows was started with it
                    return state  # waits for its children, holding nothing
            elif node.queue is not None and state.status is not FlowStatus.CANCELING:
                # A worker runs it, wherever it is (docs/workers.md): the append that started
                # it offered it on its queue. Claimed, its worker's lease lapsed: a lost
                # worker's node runs again (40110); a lost poll is offered again.
                if running.node_id in started_here:
                    return None
                if running.operation_id is not None:
                    await self._work.reoffer(state.flow_id)
                    return None
                command = Interrupt(running.node_id)
            elif running.node_id in outcomes:
                command = outcomes[running.node_id]  # ran here; recording it failed before
            elif running.waiting and state.status is not FlowStatus.CANCELING:
                if not await nodes.time_came(state, running):
                    return None  # claimed early: deferred to its time, no longer ours
                command = Wake(running.node_id)
            elif running.node_id in started_here and state.status is not FlowStatus.CANCELING:
                started_here.discard(running.node_id)
                command = await nodes.execute(state, running, node, parent)
                if command is not None:
                    outcomes[running.node_id] = command
            elif state.status is FlowStatus.CANCELING or running.operation_id is None:
                # Canceled while not executing here, or abandoned by a lost worker.
                command = Interrupt(running.node_id)
            else:
                command = await nodes.poll(state, running, node)
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
            state, wait = recorded
            if wait is not None:
                await self._wait(state, wait)
                return None
            waits = state.running_node is not None and state.running_node.waiting
            if isinstance(command, RecordWaiting) and waits:
                return state  # it waits holding nothing: its row says when to look again

    async def _append(
        self,
        state: FlowState,
        events: list[FlowEvent],
        started_here: set[str],
        harvest: Sequence[Harvested] = (),
        *,
        background: bool = True,
    ) -> tuple[FlowState, bool]:
        """Appends; the nodes these events start are ours to run. When the flow moved
        meanwhile: (the fresh state, False), and nothing is ours."""
        starting = {e.node_id for e in events if isinstance(e, NodeStarted)}
        started_here |= starting  # before the append: its reply may be lost after the commit
        asked = time.perf_counter()
        self.in_transition += 1
        try:
            appended = await self._flows.append(
                state, events, self._caller, background=background, harvest=harvest
            )
            self._waited(time.perf_counter() - asked, self.in_transition)
        except WrongExpectedVersion:
            started_here -= starting
            self._gate.forget(state.flow_id)  # someone else appended: a stop gives slots back
            return await self._flows.load(state.flow_id), False
        finally:
            self.in_transition -= 1
        self._activity.recorded(events)
        return appended, True

    async def _admitted(
        self, state: FlowState, events: list[FlowEvent], definition: WorkflowDefinition
    ) -> tuple[list[FlowEvent], Admission | None]:
        """``events``, if the node they start may start now (flow control); else those before
        its start, and why the flow must wait."""
        if not definition.limited:
            return events, None
        for index, event in enumerate(events):
            if isinstance(event, NodeStarted):
                admission = await self._gate.admit(state, event.key, definition)
                if not admission.admitted:
                    return events[:index], admission
        return events, None

    def _migrated(self, state: FlowState) -> WorkflowDefinition | None:
        """The version a flow was moved to while this drive held it (FlowMigrated), if this
        process has it: the drive goes on under it (an executor's outcome is recorded against
        the node that stands for its node there). None: the flow is let go, for a reactor
        that has the version to claim."""
        moved = self._registry.by_version(state.definition_version)
        log.info(
            "flow migrated while driven",
            extra={"flow_id": state.flow_id, "version": state.definition_version,
                   "known_here": moved is not None},
        )  # fmt: skip
        return moved

    async def _wait(self, state: FlowState, admission: Admission) -> None:
        """The flow waits for a slot or a rate limit, in its row, holding nothing."""
        log.info(
            "flow waits",
            extra={"flow_id": state.flow_id, "waiting_for": admission.why,
                   "recheck_in": round(admission.wait, 3)},
        )  # fmt: skip
        await self._gate.wait(state, admission.wait)

    async def _record(
        self,
        state: FlowState,
        command: Command,
        definition: WorkflowDefinition,
        started_here: set[str],
    ) -> tuple[FlowState, Admission | None] | None:
        """Records an outcome (and what follows it, when it may start now: else the flow
        waits, and the answer says why); when the flow moved meanwhile, decides again on the
        fresh state.

        None: the outcome is stale (another worker owns the node now), stop driving.
        """
        for _ in range(_RECORD_ATTEMPTS):
            if state.definition_version != definition.version:
                moved = self._migrated(state)
                if moved is None:
                    return None  # the node runs again where its new version is known
                definition = moved
            # While shutting down, record the outcome but start no next node.
            choose = decide if self.stopping else decide_and_advance
            try:
                events = choose(state, command, definition, self._clock())
            except StaleOutcome:
                log.info(
                    "outcome dropped: the node is no longer ours",
                    extra={"flow_id": state.flow_id, "command": type(command).__name__},
                )
                return None
            if not events:
                return state, None
            events, wait = await self._admitted(state, events, definition)
            state, appended = await self._append(state, events, started_here)
            if appended:
                return state, wait
        log.warning(
            "outcome not recorded: the flow kept changing", extra={"flow_id": state.flow_id}
        )
        return None
