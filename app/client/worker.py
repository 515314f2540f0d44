"""A worker of a task queue, in Python (docs/client.md, "Workers"): it long-polls the queue
over the REST task API, runs each task's executor (``async def executor(node, ctx)``, as the
reactor runs one in flowlog's own processes), heartbeats while it runs and completes the task
with its outcome.

An outcome is what it would be in flowlog's reactor, by the same functions
(app/workflow/outcomes.py): a return is success (its value, or what ``node.record`` wrote, is
the result text; the context's changes and removals go with it), a NodeError fails with its
code and message, a timeout of the node's definition with 40108, anything else with 40109; a
polling node's executor returns its operation id, and its poll function's Running, Finished or
Failed answers the polls. Outcomes that flowlog cannot store fail with 40134, as they do in the
reactor.

A task the worker has no executor for is failed at once (40109, the message naming what is
missing), not left alone: a poll cannot choose the nodes it takes, so the task would sit leased
until its lease lapsed, be offered again (to this worker as likely as to another), and end as a
lost worker's (40110) after a few rounds, which says nothing of why. Failed, the flow takes its
retry policy and fail path at once, and an operator reads the reason in its history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from flowlog.client.errors import Conflict, FlowlogError, NotFound
from flowlog.client.tasks import TaskMethods
from flowlog.times import utc_now
from flowlog.wire.base import max_length
from flowlog.wire.tasks import CompleteRequest, PollRequest, TaskInfo
from flowlog.workflow.commands import Command, RecordFailure, RecordSubmitted, RecordSuccess
from flowlog.workflow.definition import NodeDefinition, NodeKind, WorkflowDefinition
from flowlog.workflow.errors import Code
from flowlog.workflow.executor import Executor, FlowContext, NodeHandle, PollFunction, Running
from flowlog.workflow.fanout import no_executor
from flowlog.workflow.outcomes import (
    call,
    failure,
    polled,
    raised,
    returned,
    storable,
    unexpected,
    unstorable_failure,
)

log = logging.getLogger("flowlog.worker")

MAX_POLL = 100
"""The most tasks one poll leases (the API's limit)."""
_MESSAGE_LIMIT = max_length(CompleteRequest, "message")
_BACKOFF_LIMIT = 30.0


def default_worker_id() -> str:
    """``host-pid``, in the characters a worker id may have."""
    return re.sub(r"[^A-Za-z0-9_.:@/-]", "-", f"{socket.gethostname()}-{os.getpid()}")[:200]


def queued_nodes(
    queue: str, definitions: Iterable[WorkflowDefinition]
) -> dict[tuple[str, str], NodeDefinition]:
    """The nodes of ``definitions`` offered on ``queue`` that have an executor, by definition
    and node name (as a task names them)."""
    return {
        (definition.name, node.name): node
        for definition in definitions
        for node in definition.nodes.values()
        if node.queue == queue and node.executor is not no_executor
    }


class _Job:
    """A task's executor (or poll function) running, and why it was interrupted, if it was."""

    def __init__(self, run: asyncio.Future[Any]) -> None:
        self.run = run
        self.interrupted_because: str | None = None

    def interrupt(self, because: str) -> None:
        if self.interrupted_because is None and not self.run.done():
            self.interrupted_because = because
            self.run.cancel()


class Worker:
    """Runs the tasks of one queue: ``await worker.run()`` until ``worker.stop()`` (a graceful
    stop: no more polls, running executors get ``grace`` seconds to finish, then are
    interrupted and their tasks left to their leases), or ``async with worker:``. A worker runs
    once."""

    def __init__(
        self,
        client: TaskMethods,
        queue: str,
        *,
        definitions: Iterable[WorkflowDefinition] = (),
        executors: Mapping[str, Executor] | None = None,
        polls: Mapping[str, PollFunction] | None = None,
        concurrency: int = 1,
        worker_id: str | None = None,
        wait: float = 20.0,
        grace: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.worker_id = worker_id or default_worker_id()
        # What a poll would refuse (the queue's name, the worker id, the wait), refused now.
        PollRequest(queue=queue, workerId=self.worker_id, waitSeconds=wait)
        self.concurrency = concurrency
        self.wait = wait
        self.grace = grace
        self._client = client
        self._nodes = queued_nodes(queue, definitions)
        self._executors = dict(executors or {})
        if not self._nodes and not self._executors:
            raise ValueError(
                f"nothing to run on queue {queue!r}: no node of the definitions is offered on "
                "it with an executor, and no executors= were given"
            )
        self._polls = dict(polls or {})
        self._stopping = asyncio.Event()
        self._jobs: set[_Job] = set()
        self._running: asyncio.Task[None] | None = None
        self.counts: Counter[str] = Counter()
        """Tasks by what came of them: success, fail, running (a submitted operation, a poll
        still running), interrupted, lost (the lease was over), unrecorded, no-executor."""

    def stop(self) -> None:
        """Stops polling; ``run()`` returns once the running executors finished (or ``grace``
        passed)."""
        self._stopping.set()

    async def __aenter__(self) -> Worker:
        self._running = asyncio.create_task(self.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._running is not None:
            await self._running

    async def run(self) -> None:
        """Polls and runs tasks until ``stop()``. Raises the refusals that no retry mends
        (Unauthorized, Forbidden, BadRequest); logs the others and polls again, backing off."""
        where = {"queue": self.queue, "worker_id": self.worker_id}
        log.info("worker polling", extra={**where, "concurrency": self.concurrency,
                                          "nodes": sorted("/".join(k) for k in self._nodes),
                                          "executors": sorted(self._executors)})  # fmt: skip
        active: set[asyncio.Task[None]] = set()
        failures = 0
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(active)
                if free <= 0:
                    await self._until_stopped(*active)
                    continue
                try:
                    tasks = await self._poll(min(free, MAX_POLL))
                except FlowlogError as exc:
                    if exc.status in (400, 401, 403):
                        raise
                    failures += 1
                    log.warning("poll failed", extra={**where, "error": str(exc)})
                    await self._until_stopped(within=min(_BACKOFF_LIMIT, 0.5 * 2**failures))
                    continue
                failures = 0
                for task in tasks:
                    work = asyncio.create_task(self._work(task))
                    active.add(work)
                    work.add_done_callback(active.discard)
        finally:
            await self._drain(active)
            log.info("worker stopped", extra={**where, **self.counts})

    async def _until_stopped(
        self, *tasks: asyncio.Future[Any], within: float | None = None
    ) -> None:
        """Waits until one of ``tasks`` ends, the worker is stopped, or ``within`` seconds pass."""
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({stopped, *tasks}, timeout=within,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            stopped.cancel()

    async def _poll(self, most: int) -> list[TaskInfo]:
        """A long poll for up to ``most`` tasks, cut short by a stop: the server offers again
        what it leases for a poll whose client went away."""
        poll = asyncio.ensure_future(
            self._client.poll_tasks(self.queue, self.worker_id, max=most, wait=self.wait)
        )
        try:
            await self._until_stopped(poll)
        finally:
            if not poll.done():
                poll.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poll
        return [] if poll.cancelled() else poll.result()

    async def _drain(self, active: set[asyncio.Task[None]]) -> None:
        """Lets the running tasks finish, for ``grace`` seconds (none when the worker itself
        is cancelled); then interrupts them (their leases lapse: flowlog runs them again)."""
        current = asyncio.current_task()
        hard = current is not None and current.cancelling() > 0
        if active and not hard:
            extra = {"queue": self.queue, "tasks": len(active), "grace": self.grace}
            log.info("worker stopping: waiting for running tasks", extra=extra)
            await asyncio.wait(active, timeout=self.grace)
        for job in list(self._jobs):
            job.interrupt("the worker stopped")
        if active:
            await asyncio.wait(active)

    def _node(self, task: TaskInfo) -> NodeDefinition | None:
        """The node whose executor runs ``task``: from the definitions, else by node name."""
        node = self._nodes.get((task.flowName, task.nodeName))
        if node is not None:
            return node
        executor = self._executors.get(task.nodeName)
        if executor is None:
            return None
        return NodeDefinition(task.nodeName, executor, kind=NodeKind(task.kind),
                              poll=self._polls.get(task.nodeName), queue=self.queue)  # fmt: skip

    async def _work(self, task: TaskInfo) -> None:
        handle = NodeHandle(
            flow_id=task.workFlowId, node_id=task.nodeId, key=task.nodeKey, name=task.nodeName,
            kind=task.kind, attempt=task.attempt, operation_id=task.operationId,
        )  # fmt: skip
        context = FlowContext(task.context)
        extra = {"flow_id": task.workFlowId, "node_id": task.nodeId, "node": task.nodeName,
                 "flow": task.flowName, "attempt": task.attempt,
                 "operation_id": task.operationId, "trace_id": context.trace_id}  # fmt: skip
        node = self._node(task)
        missing = _missing(node, task, self.worker_id)
        if node is None or missing is not None:
            log.warning("no executor for the task", extra={**extra, "error": missing})
            failed = failure(handle, context, Code.NODE_FAILED, missing or "")
            await self._complete(task, failed, extra, "no-executor")
            return
        log.debug("task leased", extra=extra)
        if task.operationId is None:
            job = _Job(asyncio.ensure_future(call(node, handle, context)))
        else:
            job = _Job(asyncio.ensure_future(polled(node, handle, context, task.operationId)))
        self._jobs.add(job)
        beating = asyncio.create_task(self._beat(task, job, extra))
        try:
            value = await job.run
        except asyncio.CancelledError as exc:
            if job.interrupted_because is None:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the worker itself is cancelled
                outcome: Command | Running = raised(node, handle, context, exc)
            else:
                log.info("executor interrupted",
                         extra={**extra, "because": job.interrupted_because})  # fmt: skip
                self.counts["interrupted"] += 1
                return
        except Exception as exc:
            if unexpected(exc):
                log.info("executor failed", extra={**extra, "error": repr(exc)})
            outcome = raised(node, handle, context, exc)
        else:
            if task.operationId is None:
                outcome = returned(node, handle, context, value, utc_now)
            else:
                outcome = value
        finally:
            self._jobs.discard(job)
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        await self._complete(task, outcome, extra)

    async def _beat(self, task: TaskInfo, job: _Job, extra: dict[str, Any]) -> None:
        """Heartbeats every third of the lease; interrupts the job when the flow no longer
        wants it (stopped, canceled, or the lease is over)."""
        every = task.leaseSeconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                beat = await self._client.heartbeat_task(task.taskToken)
            except NotFound:
                job.interrupt("the task is gone")
                return
            except FlowlogError as exc:
                # Unreachable after the client's retries: the next beat may get through, and
                # a lease lost meanwhile is said by the next one, or by the completion.
                log.warning("heartbeat failed", extra={**extra, "error": str(exc)})
                continue
            if not beat.wanted:
                job.interrupt(f"the workflow no longer wants it (it is {beat.status})")
                return

    async def _complete(
        self, task: TaskInfo, outcome: Command | Running, extra: Any, counted: str = ""
    ) -> None:
        """Sends the outcome; counts it (as ``counted``, or by its status)."""
        try:
            answer = await self._answer(task, outcome)
        except Conflict as exc:
            log.warning("the lease was over: outcome not recorded",
                        extra={**extra, "error": str(exc)})  # fmt: skip
            self.counts["lost"] += 1
            return
        except FlowlogError as exc:
            # NotFound (the flow was archived, say), or the server unreachable after the
            # retries: the lease lapses, and flowlog runs the node again.
            log.error("outcome not recorded", extra={**extra, "error": str(exc)})
            self.counts["unrecorded"] += 1
            return
        status = "running" if isinstance(outcome, Running | RecordSubmitted) else (
            "success" if isinstance(outcome, RecordSuccess) else "fail"
        )  # fmt: skip
        self.counts[counted or status] += 1
        log.info("task completed", extra={**extra, "outcome": status, "status": answer})

    async def _answer(self, task: TaskInfo, outcome: Command | Running) -> str:
        """Sends the outcome (as it can be stored); the flow's status after it."""
        if isinstance(outcome, Running):
            return (await self._client.complete_task(task.taskToken, "running")).status
        outcome = storable(outcome)
        try:
            return await self._send(task.taskToken, outcome)
        except ValidationError as exc:
            # What the task API refuses beyond what flowlog cannot store at all (a context
            # key flowlog sets itself, a result over its size): the node fails, saying why.
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            failed = unstorable_failure(task.nodeId, f"{where}: {error['msg']}")
            return await self._send(task.taskToken, failed)

    async def _send(self, token: str, outcome: Command) -> str:
        match outcome:
            case RecordSuccess():
                answer = await self._client.complete_task(
                    token, "success", result=outcome.result, context=outcome.changes,
                    context_removed=outcome.removed, parameters=outcome.parameters,
                )  # fmt: skip
            case RecordFailure():
                message = outcome.message
                if len(message) > _MESSAGE_LIMIT:
                    message = message[: _MESSAGE_LIMIT - 3] + "..."
                answer = await self._client.complete_task(
                    token, "fail", result=outcome.result, context=outcome.changes,
                    context_removed=outcome.removed, parameters=outcome.parameters,
                    message=message, code=outcome.code,
                )  # fmt: skip
            case RecordSubmitted():
                answer = await self._client.complete_task(
                    token, "running", operation_id=outcome.operation_id,
                    context=outcome.changes, context_removed=outcome.removed,
                )  # fmt: skip
            case _:  # a node on a queue is a sync or polling one: nothing else comes of it
                raise AssertionError(f"a task's outcome cannot be {type(outcome).__name__}")
        return answer.status


def _missing(node: NodeDefinition | None, task: TaskInfo, worker_id: str) -> str | None:
    """Why this worker cannot run ``task`` (None: it can)."""
    if node is None:
        return (f"worker {worker_id} has no executor for node {task.nodeName!r} of "
                f"{task.flowName!r} (give it the node's definition, or the executor in "
                "executors=)")  # fmt: skip
    if task.operationId is not None and node.poll is None:
        return (f"worker {worker_id} has no poll function for node {task.nodeName!r} of "
                f"{task.flowName!r} (the node's poll=, or polls=)")  # fmt: skip
    return None
