"""A node's execution in a drive: its executor and what came of it, a polling node's poll,
and whether the time of a flow claimed early has come.

- an executor runs as a task of its own, known to the heartbeat (``NodeRunner.executing``),
  which interrupts it when the flow is canceled or the lease lost;
- what it returned, raised or took too long to do becomes the command that records it;
- a flow claimed before its time (a retry's, a timer's; the database's clock ahead of ours)
  is put back in its row, due when its time comes on the database's clock: the claim loop
  would otherwise take it again at once and spin until the clocks agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from flowlog.telemetry import tracing
from flowlog.times import Clock
from flowlog.workflow.activity import Activity
from flowlog.workflow.callbacks import CallbackTokens, token_id
from flowlog.workflow.commands import (
    Command,
    RecordCanceled,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RecordWaiting,
)
from flowlog.workflow.definition import NodeDefinition, NodeKind
from flowlog.workflow.errors import Code
from flowlog.workflow.executor import FlowContext, Running
from flowlog.workflow.outcomes import call, handle_of, poll_once, raised, returned, unexpected
from flowlog.workflow.parking import ParkingLot
from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution
from flowlog.workflow.work import WorkQueue

# The reactor's modules log under one name, the one operators filter on.
log = logging.getLogger("flowlog.workflow.reactor")

_WAKE_SLACK = 1.0
"""A waiting node claimed this many seconds or less before its time (the database's clock
ahead of ours) is waited for here, rather than released to be claimed again at once."""

Observer = Callable[[str, str, str, float], None]
"""``observe(definition, node, outcome, seconds)``: told of every executor run."""


class Execution:
    """An executor running in this process, and why it was interrupted (if it was)."""

    def __init__(self, node_id: str, task: asyncio.Future[Any]) -> None:
        self.node_id = node_id
        self.task = task
        self.interrupted_because: str | None = None

    def interrupt(self, because: str) -> None:
        if self.interrupted_because is None and not self.task.done():
            self.interrupted_because = because
            self.task.cancel()


class NodeRunner:
    """Runs the nodes of the flows one reactor drives."""

    __slots__ = (
        "_activity", "_clock", "_observe", "_parking", "_poll_interval", "_tokens", "_work",
        "executing",
    )  # fmt: skip

    def __init__(
        self,
        work: WorkQueue,
        parking: ParkingLot,
        tokens: CallbackTokens,
        activity: Activity,
        clock: Clock,
        observe: Observer | None,
        poll_interval: float,
    ) -> None:
        self._work = work
        self._parking = parking
        self._tokens = tokens
        self._activity = activity
        self._clock = clock
        self._observe = observe
        self._poll_interval = poll_interval
        self.executing: dict[str, Execution] = {}
        """The executors running now, by flow id (the heartbeat interrupts them)."""

    async def execute(
        self, state: FlowState, running: NodeExecution, node: NodeDefinition, parent: str | None
    ) -> Command | None:
        """Runs the node's executor: the outcome to record, or None when the lease was lost
        meanwhile (whoever holds it now decides)."""
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
            token = await self._tokens.token(running.node_id, state.tenant_id)
        handle = handle_of(state, running, token)
        context = FlowContext(state.context)
        task = asyncio.ensure_future(call(node, handle, context))
        execution = Execution(running.node_id, task)
        self.executing[state.flow_id] = execution
        self._activity.nodes_run += 1
        extra = {"flow_id": state.flow_id, "node": running.name, "attempt": running.attempt,
                 "trace_id": context.trace_id}  # fmt: skip
        try:
            value = await task
        except asyncio.CancelledError as exc:
            if execution.interrupted_because is None:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the reactor itself is shutting down
                # The executor raised CancelledError of its own accord: a failure like any other.
                return raised(node, handle, context, exc)
            log.info(
                "executor interrupted", extra={**extra, "because": execution.interrupted_because}
            )
            if execution.interrupted_because == "canceled":
                return RecordCanceled(running.node_id)
            return None  # the lease is lost: whoever holds it now decides
        except Exception as exc:
            if unexpected(exc):
                log.info("executor failed", extra={**extra, "error": repr(exc)})
            return raised(node, handle, context, exc)
        finally:
            if self.executing.get(state.flow_id) is execution:
                del self.executing[state.flow_id]
        waiting_on = None if token is None else token_id(token)
        return returned(node, handle, context, value, self._clock, waiting_on)

    async def retry_early(self, state: FlowState) -> bool:
        """A flow claimed before its retry's time (the database's clock ahead of ours) is
        deferred by what is left, on the database's clock, as a waiting node is (time_came);
        True when it was. Claimed on time, nothing is written."""
        last = state.last_node
        if last is None or not last.will_retry or last.retry_at is None:
            return False
        early = (last.retry_at - self._clock()).total_seconds()
        if early <= 0 or state.status is not FlowStatus.PROCESSING:
            return False
        await self._work.wait(state.flow_id, early, state.version)
        return True

    async def time_came(self, state: FlowState, running: NodeExecution) -> bool:
        """Whether a waiting node's time (a timer's, a callback's deadline) has come; one a
        little early is waited for. Rows are claimed by the database's clock and due times
        written by this process's: claimed earlier than that (the database's clock ahead), the
        row is deferred by what is left, on the database's clock, so that it is not claimable
        again at once (the claim loop would spin until the clocks agree)."""
        due = running.wake_at or running.deadline
        early = 0.0 if due is None else (due - self._clock()).total_seconds()
        if due is None or early > _WAKE_SLACK:
            wait = self._poll_interval if due is None else early
            await self._work.wait(state.flow_id, wait, state.version)
            return False
        if early > 0:
            await asyncio.sleep(early)
        return True

    async def poll(
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
        await self._parking.park(state, running, node, wait)
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
