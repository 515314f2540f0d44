"""The task API's service: polls lease offered tasks, heartbeats extend leases, completions
record the node's outcome (docs/workers.md).

An offer is the flow's ``flow_work`` row, written by the append that starts a node with a
queue (sql/queries/workflow.sql, ``work_upsert``). A poll leases offered rows in the claiming
statement and answers them with their tokens; waiting polls are woken by the process's LISTEN
connection on the channel of offers (every append that offers a task is followed by a NOTIFY
there), and look again at least every second (a polling node's next poll is offered by time,
not by an append).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from flowlog.eventstore import Listener, wait_any
from flowlog.projections.reads import get_workflow
from flowlog.projections.rows import WorkflowRow
from flowlog.tasks.queries import Q
from flowlog.tasks.tokens import TaskToken, TaskTokens, parse
from flowlog.times import Clock, utc_now
from flowlog.workflow.caller import Caller
from flowlog.workflow.commands import CompleteTask
from flowlog.workflow.decide import decide
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState
from flowlog.workflow.task_decisions import RUNNING

log = logging.getLogger(__name__)

OFFERS = "flowlog_task_offers"
"""The channel an append that offers a task notifies (its process's coalesced notifier): a
waiting poll wakes for offers, not for every append."""
DEFAULT_LEASE_SECONDS = 30.0
_LOOK_AGAIN = 1.0
"""A waiting poll looks again this often without a wake-up (a poll's next time comes)."""
WORKERS_SEEN_SECONDS = 60.0
_FORGET_WORKERS = 86_400.0
_SEEN_EVERY = 5.0
_SEEN_MEMORY = 10_000


@dataclass(frozen=True, slots=True)
class Task:
    """A leased task, as a poll answers it."""

    token: str
    flow_id: str
    flow_name: str
    biz_id: str
    node_id: str
    node_name: str
    node_key: str
    kind: str
    attempt: int
    operation_id: str | None
    context: Mapping[str, Any]
    parameters: str | None
    priority: int
    lease_seconds: float


@dataclass(frozen=True, slots=True)
class Beat:
    """A heartbeat's answer: whether the flow still wants the result."""

    wanted: bool
    status: str
    """The flow's status (a stopped or canceled flow does not want it)."""


@dataclass(frozen=True, slots=True)
class Answer:
    flow_id: str
    node_id: str
    status: str
    """The flow's status after the answer."""


def _no_task() -> WorkflowError:
    return WorkflowError(Code.TASK_NOT_FOUND, "no task answers to this task token")


class TaskQueues:
    """The task API of one process, over the engine's pool, service and listener."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        service: WorkflowService,
        listener: Listener | None,
        clock: Clock = utc_now,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self._pool = pool
        self._service = service
        self._listener = listener
        self._clock = clock
        self._tokens = TaskTokens(service.tokens)
        self.lease_seconds = lease_seconds
        self._forgot_at = 0.0
        self._seen_at: dict[tuple[str, str, str], float] = {}

    async def poll(
        self,
        tenant: str,
        queue: str,
        worker: str,
        most: int,
        wait: float,
        key: str | None = None,
        gone: Callable[[], bool] = lambda: False,
    ) -> list[Task]:
        """Up to ``most`` tasks of ``tenant``'s ``queue`` leased to ``worker``, waiting up to
        ``wait`` seconds for one. Sent again with the same idempotency ``key``, a poll
        answers the tasks its first sending leased (while the worker holds them)."""
        await self._seen(tenant, queue, worker)
        if key is not None:
            again = await self._pool.fetch(Q.task_claimed_before, tenant, key, worker)
            if again:
                return [await self._task(row) for row in again]
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        woken = self._listener.register() if self._listener is not None and wait > 0 else None
        try:
            while True:
                if woken is not None:
                    woken.clear()
                rows = await self._pool.fetch(
                    Q.task_claim, tenant, queue, most, worker, self.lease_seconds, key
                )
                if rows and gone():
                    # Nobody would receive them: offered again at once, not lost to a lease.
                    await self._pool.execute(Q.task_unclaim, [r["flow_id"] for r in rows], worker)
                    return []
                left = until - loop.time()
                if rows or left <= 0 or woken is None or gone():
                    return [await self._task(row) for row in rows]
                await wait_any([woken], min(left, _LOOK_AGAIN))
        finally:
            if woken is not None and self._listener is not None:
                self._listener.unregister(woken)

    async def _task(self, row: asyncpg.Record) -> Task:
        task = TaskToken(row["task_node_id"], row["task_operation"], row["task_claims"])
        return Task(
            token=await self._tokens.token(task, row["tenant_id"]),
            flow_id=row["flow_id"],
            flow_name=row["flow_name"],
            biz_id=row["biz_id"],
            node_id=row["task_node_id"],
            node_name=row["node_name"],
            node_key=row["node_key"],
            kind=row["kind"],
            attempt=row["attempt"],
            operation_id=row["task_operation"],
            context=row["context"],
            parameters=row["parameters"],
            priority=row["priority"],
            lease_seconds=self.lease_seconds,
        )

    async def _seen(self, tenant: str, queue: str, worker: str) -> None:
        now = asyncio.get_running_loop().time()
        # The queues page counts workers seen in the last minute: once in a few seconds will do.
        if now - self._seen_at.get((tenant, queue, worker), -_SEEN_EVERY) < _SEEN_EVERY:
            return
        if len(self._seen_at) > _SEEN_MEMORY:
            self._seen_at.clear()
        self._seen_at[(tenant, queue, worker)] = now
        await self._pool.execute(Q.worker_seen, tenant, queue, worker)
        if now - self._forgot_at > 600:
            self._forgot_at = now
            await self._pool.execute(Q.workers_forget, _FORGET_WORKERS)

    async def _checked(self, token: str, tenant: str | None) -> tuple[TaskToken, WorkflowRow]:
        """The task a token names, if it is a genuine token of a flow of ``tenant`` (None:
        any); with the flow's row. Anything else is no task (404), whoever's it is."""
        task = parse(token)
        if task is None:
            raise _no_task()
        row = await get_workflow(self._pool, task.flow_id)
        if row is None or (tenant is not None and row.tenant_id != tenant):
            raise _no_task()
        if not await self._tokens.valid(token, task, row.tenant_id):
            raise _no_task()
        return task, row

    async def heartbeat(self, token: str, tenant: str | None, details: Any = None) -> Beat:
        """Extends the lease of the token's task; says whether the flow still wants it."""
        task, flow = await self._checked(token, tenant)
        row = await self._pool.fetchrow(
            Q.task_heartbeat, task.flow_id, task.node_id, task.operation_id, task.claim,
            self.lease_seconds, details,
        )  # fmt: skip
        if row is None:
            now = await get_workflow(self._pool, task.flow_id)
            return Beat(False, "" if now is None else now.status)
        await self._seen(flow.tenant_id, row["queue"], row["task_worker"])
        return Beat(row["status"] == "Processing", row["status"])

    async def complete(
        self, token: str, tenant: str | None, command: CompleteTask, caller: Caller
    ) -> Answer:
        """Records a worker's answer to the token's task (``command`` without its node and
        operation, which the token names)."""
        task, flow = await self._checked(token, tenant)
        command = _for(task, command)
        # Sent again with its key after the answer was lost: the first answer, though the
        # lease it used is over by now.
        if (first := await self._service.answered(task.flow_id, command, caller)) is not None:
            return Answer(task.flow_id, task.node_id, first.status.value)
        current = await self._pool.fetchrow(
            Q.task_current, task.flow_id, task.node_id, task.operation_id, task.claim
        )
        if current is None:
            raise WorkflowError(
                Code.TASK_GONE,
                f"this token's lease of node {task.node_id} is over (completed already, or "
                f"lapsed and taken back; the workflow is {flow.status}): nothing was done",
            )
        by = dataclasses.replace(caller, actor=f"{caller.actor} worker:{current['task_worker']}")
        if command.status == RUNNING and task.operation_id is not None:
            # A poll's answer: read the flow here only, where its deadline is to be judged.
            state = await self._service.get(task.flow_id)
            if not await self._poll_later(state, command, task):
                return Answer(task.flow_id, task.node_id, state.status.value)
        after = await self._service.complete_task(task.flow_id, command, by)
        return Answer(task.flow_id, task.node_id, after.status.value)

    async def _poll_later(self, state: FlowState, command: CompleteTask, task: TaskToken) -> bool:
        """A poll found its operation still running: offered again after the node's poll
        interval (nothing recorded). True when there is something to record after all (the
        poll's deadline passed)."""
        definition = self._service.registry.get_version(state.name, state.definition_version)
        if decide(state, command, definition, self._clock()):
            return True
        running = state.running_node
        assert running is not None
        interval = definition.node(running.key).poll_interval
        moved = await self._pool.fetchval(
            Q.task_poll_later, task.flow_id, task.node_id, task.operation_id, task.claim, interval
        )
        if moved is None:
            raise WorkflowError(Code.TASK_GONE, "this token's lease is over: nothing was done")
        return False

    async def queues(self, tenant: str | None) -> list[asyncpg.Record]:
        """Each queue of ``tenant`` (None: every tenant's) with its depth and workers."""
        return await self._pool.fetch(Q.queues, tenant, WORKERS_SEEN_SECONDS)

    async def task_of(self, flow_id: str) -> asyncpg.Record | None:
        """The task ``flow_id`` offers now, if any: its queue, holder, since when."""
        return await self._pool.fetchrow(Q.task_of_flow, flow_id)


def _for(task: TaskToken, command: CompleteTask) -> CompleteTask:
    """The answer, for the node and the polled operation its token names."""
    return dataclasses.replace(command, node_id=task.node_id, operation_id=task.operation_id)
