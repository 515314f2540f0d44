"""A node that runs children, driven: its children started, followed and counted.

The drive (app/workflow/drive.py) hands a running map, parallel or subflow node to
``ChildRunner.step``, which does what the node needs now and returns the parent's state:

- what happens to children happens **before** the parent records it: the children's flows are
  created (their ids derive from the node and their index, so creating one twice is refused
  and harmless), resumed, retried or canceled first, then the parent's append says so. A
  drive killed in between leaves the parent due, and whoever drives it next does the same
  again: each child command is refused or a no-op the second time. A stop is the exception
  (recorded, then done): see ``step``;
- a child's end is written by the child's own append (``flow_children``) and wakes the parent;
  the parent counts ends in its append (ChildrenEnded), which marks them counted in the same
  statement, so an end is counted once;
- the node's verdict (app/workflow/child_decisions.py) is recorded in the same append as the
  ends that decide it, with the next node's start: the join happens once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from flowlog.eventstore import WrongExpectedVersion
from flowlog.times import Clock
from flowlog.workflow import child_decisions as children
from flowlog.workflow.caller import Caller
from flowlog.workflow.child_decisions import ChildToStart, Ended
from flowlog.workflow.commands import (
    CancelFlow,
    Command,
    CreateFlow,
    RecordCanceled,
    RecordFailure,
    RetryFlow,
    StartFlow,
    StopFlow,
)
from flowlog.workflow.decide import decide, decide_and_advance
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.events import ChildrenCommanded, ChildrenEnded, ChildrenStarted, FlowEvent
from flowlog.workflow.events import FlowStarted as Started
from flowlog.workflow.fold import evolve
from flowlog.workflow.queries import Q
from flowlog.workflow.state import TERMINAL, FlowState, FlowStatus
from flowlog.workflow.store import FlowRepository, Harvested

log = logging.getLogger("flowlog.workflow.reactor")

Append = Callable[
    [FlowState, list[FlowEvent], Sequence[Harvested]], Awaitable[tuple[FlowState, bool]]
]
"""The drive's append: (the state after, True), or (the fresh state, False) when the flow
moved meanwhile."""

_COMMAND_ATTEMPTS = 5
_HOLD_SECONDS = 0.5
"""How long a flow is kept waiting for its children's next end before it is let go."""
_HOLD_POLL = 0.02
"""How often a held parent looks for ends of children in other processes (its own process's
children wake it at once)."""
_ENDED, _MOVED, _IDLE = "ended", "moved", "idle"
_RUNNING = [status.value for status in FlowStatus if status not in TERMINAL]


@dataclass(frozen=True, slots=True)
class _Count:
    after: FlowState
    """The parent once the ends are counted."""
    events: list[FlowEvent]
    marks: list[Harvested]


class ChildRunner:
    __slots__ = ("_caller", "_clock", "_flows", "_registry", "_room")

    def __init__(
        self,
        flows: FlowRepository,
        registry: Registry,
        caller: Caller,
        clock: Clock,
        room: Callable[[], bool],
    ) -> None:
        self._flows = flows
        self._registry = registry
        self._caller = caller
        self._clock = clock
        self._room = room

    @property
    def _pool(self) -> asyncpg.Pool:
        return self._flows.store.pool

    async def step(
        self,
        state: FlowState,
        node: NodeDefinition,
        definition: WorkflowDefinition,
        append: Append,
    ) -> tuple[FlowState, Command | None]:
        """Moves the running node's children on. Returns the parent's state and, when the node
        has an outcome to record that is not already appended (a cancel, a failure to start),
        that outcome; (state, None) when the node now waits for its children or has ended."""
        for _ in range(100):  # each pass appends or returns; a flow that keeps moving is re-read
            fan, running = state.fan, state.running_node
            if fan is None or running is None or fan.node_id != running.node_id:
                return state, None  # the node ended meanwhile (the flow moved)
            if state.status is FlowStatus.CANCELING:
                await self._tell(state, CancelFlow(state.reason or "the parent was canceled"),
                                 _RUNNING)  # fmt: skip
                return state, RecordCanceled(running.node_id)
            if state.status is FlowStatus.STOPPED:
                if fan.stopped:
                    return state, None
                # Recorded first, then done: a resume that comes meanwhile makes the parent
                # due, and its next drive (after this one lets go) resumes what this one
                # stopped. Done first, a resume could slip in between and leave the children
                # stopped under a running parent.
                stopped = ChildrenCommanded(node_id=fan.node_id, command="stop")
                state, recorded = await append(state, [stopped], ())
                if recorded:
                    await self._tell(state, StopFlow("the parent was stopped"),
                                     [FlowStatus.PROCESSING.value])  # fmt: skip
                continue
            if state.status is not FlowStatus.PROCESSING:
                return state, None
            if fan.stopped:
                await self._tell(state, StartFlow(), [FlowStatus.STOPPED.value])
                resumed = ChildrenCommanded(node_id=fan.node_id, command="resume")
                state, _ = await append(state, [resumed], ())
                continue
            total = fan.total
            if total is None:
                planned = children.planned(state, node)
                if not isinstance(planned, int):
                    return state, planned
                total = planned
            if fan.retrying:
                retried = await self._retry(state, append)
                if retried is None:
                    return state, None  # children still being canceled: their ends wake it
                state = retried
                continue
            # The ends that came, and the next children, in one append: one commit a refill.
            count = await self._count(state)
            assert count.after.fan is not None
            if children.verdict(count.after.fan, node) is not None:
                state = await self._conclude(state, count, node, definition, append)
                if state.running_node is None or state.running_node.node_id != fan.node_id:
                    return state, None  # the node ended (and what follows was started)
                continue
            if fan.total is None:  # the first batch (none at all for an empty list)
                batch = range(0, min(total, children.limit(node, total)))
            else:
                batch = children.next_children(count.after, node)
            events = list(count.events)
            if fan.total is None or batch:
                failure = await self._start(count.after, node, definition, batch)
                if failure is not None:
                    return state, failure
                events.append(ChildrenStarted(
                    node_id=fan.node_id, first=batch.start, count=len(batch), total=total,
                    limit=children.limit(node, total),
                ))  # fmt: skip
            if events:
                state, _ = await append(state, events, count.marks)
                continue
            held = await self._hold(state) if fan.running else _IDLE
            if held == _IDLE:
                return state, None  # waits for its children, holding nothing
            if held == _MOVED:
                state = await self._flows.load(state.flow_id)
        return state, None

    async def _hold(self, state: FlowState) -> str:
        """Keeps the flow while its children end at a pace and this process has room: each
        end is counted by the next pass without the flow being claimed (and its history read
        and folded) again. ``_ENDED`` when a child ended, ``_MOVED`` when the flow changed
        (an operator's command), ``_IDLE`` when nothing came for a while (or room ran out):
        the flow is let go, and a child's end makes it due again."""
        fan = state.fan
        assert fan is not None
        woken = self._flows.watch(state.flow_id)
        loop = asyncio.get_running_loop()
        until = loop.time() + _HOLD_SECONDS
        try:
            while loop.time() < until and self._room():
                woken.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), _HOLD_POLL)
                row = await self._pool.fetchrow(Q.children_news, fan.children_of, state.flow_id)
                if row is not None and row["ended"]:
                    return _ENDED
                if row is None or row["version"] != state.version:
                    return _MOVED
            return _IDLE
        finally:
            self._flows.unwatch(state.flow_id)

    async def _count(self, state: FlowState) -> _Count:
        """The running node's children's ends not counted yet, as the events that count them
        and the marks that say so in the same append."""
        fan = state.fan
        assert fan is not None
        rows = await self._pool.fetch(Q.children_unharvested, fan.children_of)
        if not rows:
            return _Count(state, [], [])
        ended = ChildrenEnded(node_id=fan.node_id,
                              ended=[(r["child_index"], r["status"]) for r in rows])  # fmt: skip
        marks = [Harvested(fan.children_of, r["child_index"], r["child_version"]) for r in rows]
        return _Count(evolve(state, ended, self._clock()), [ended], marks)

    async def _conclude(
        self,
        state: FlowState,
        count: _Count,
        node: NodeDefinition,
        definition: WorkflowDefinition,
        append: Append,
    ) -> FlowState:
        """Records the node's outcome, decided by the ends just counted (or by none: a map of
        an empty list), in the append that counts them; the children it no longer needs are
        canceled first."""
        after, events = count.after, list(count.events)
        fan = after.fan
        assert fan is not None
        if fan.running:
            stray = await self._tell(after, CancelFlow("the node's outcome is decided"),
                                     _RUNNING)  # fmt: skip
            events.append(ChildrenCommanded(node_id=fan.node_id, command="cancel",
                                            indexes=stray))  # fmt: skip
            after = evolve(after, events[-1], self._clock())
        ends = [Ended(r["child_index"], r["status"], r["context"])
                for r in await self._pool.fetch(Q.children_ends, fan.children_of)]  # fmt: skip
        outcome = children.outcome(after, node, ends)
        events += decide_and_advance(after, outcome, definition, self._clock())
        moved, _ = await append(state, events, count.marks)
        return moved

    async def _start(
        self, state: FlowState, node: NodeDefinition, definition: WorkflowDefinition, batch: range
    ) -> Command | None:
        """Creates (and starts) the children of ``batch``; a failure of the node when their
        definition is unknown here."""
        try:
            made = [
                self._creation(state, children.child_to_start(state, node, definition, i))
                for i in batch
            ]
        except WorkflowError as exc:
            running = state.running_node
            assert running is not None
            message = f"the children cannot start: {exc.message}"
            return RecordFailure(
                running.node_id, Code.CHILDREN_NOT_STARTED, message, message + "\n"
            )
        await asyncio.gather(*(self._create(events) for events in made))
        return None

    def _creation(self, state: FlowState, child: ChildToStart) -> list[FlowEvent]:
        if child.entry is not None:
            definition = self._registry.get_version(state.name, child.definition)
        else:
            definition = self._registry.get(child.definition, state.tenant_id or None)
        command = CreateFlow(child.flow_id, child.biz_id, state.biz_type, state.tenant_id,
                             child.context, child.parent, child.entry,
                             priority=state.priority)  # fmt: skip
        return [*decide(None, command, definition, self._clock()), Started()]

    async def _create(self, events: list[FlowEvent]) -> None:
        # Refused when made before, by a drive that did not live to record it: it is this child.
        with contextlib.suppress(WrongExpectedVersion):
            await self._flows.append(None, events, self._caller)  # the requests' lane, as the
            # parent's own appends (app/workflow/drive.py): not behind the children's outcomes

    async def _retry(self, state: FlowState, append: Append) -> FlowState | None:
        """A retry took the failed node's children over: every child that did not finish
        runs again, once it has ended (those the failed node canceled may still be ending:
        None until they have)."""
        count = await self._count(state)
        if count.events:
            counted, _ = await append(state, count.events, count.marks)
            return counted
        fan = state.fan
        assert fan is not None
        ending = FlowStatus.CANCELING.value
        if await self._pool.fetch(Q.children_in, state.flow_id, fan.children_of, [ending]):
            return None
        changes, removed = fan.patch if fan.patch is not None else ({}, ())
        command = RetryFlow(dict(changes), tuple(removed), canceled=True)
        ids = [children.child_flow_id(fan.children_of, i) for i in sorted(fan.failed)]
        await asyncio.gather(*(self._command(child, command) for child in ids))
        retried = ChildrenCommanded(node_id=fan.node_id, command="retry",
                                    indexes=sorted(fan.failed))  # fmt: skip
        moved, _ = await append(state, [retried], ())
        return moved

    async def _tell(self, state: FlowState, command: Command, statuses: list[str]) -> list[int]:
        """Gives ``command`` to the running node's children in ``statuses``; their indexes."""
        fan = state.fan
        assert fan is not None
        rows = await self._pool.fetch(Q.children_in, state.flow_id, fan.children_of, statuses)
        await asyncio.gather(*(self._command(r["id"], command) for r in rows))
        return [r["child_index"] for r in rows]

    async def _command(self, flow_id: str, command: Command) -> None:
        """An operator's command on a child, on the parent's behalf; a refusal (the child
        ended, or is already as asked) changes nothing and is not an error."""
        for _ in range(_COMMAND_ATTEMPTS):
            state = await self._flows.load(flow_id)
            try:
                events = decide(state, command, None, self._clock())
            except WorkflowError:
                return
            if not events:
                return
            try:
                await self._flows.append(state, events, self._caller, background=True)
                return
            except WrongExpectedVersion:
                continue
        log.warning("child kept changing: command not given",
                    extra={"flow_id": flow_id, "command": type(command).__name__})  # fmt: skip
