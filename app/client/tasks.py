"""The client's task API (docs/workers.md): poll a queue, heartbeat and complete its tasks, list
the queues; and ``worker()``, which does all of that for Python executors
(app/client/worker.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from flowlog.client.transport import Transport
from flowlog.wire.tasks import (
    CompleteRequest,
    CompleteResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    PollRequest,
    PollResponse,
    QueueInfo,
    QueueList,
    TaskInfo,
)

if TYPE_CHECKING:  # the worker loads the engine's executor model: only when one is made
    from flowlog.client.worker import Worker
    from flowlog.workflow.definition import WorkflowDefinition
    from flowlog.workflow.executor import Executor, PollFunction

TASKS = "/api/v1/tasks/"


class TaskMethods(Transport):
    """The task API's calls of ``FlowlogClient``."""

    async def poll_tasks(
        self,
        queue: str,
        worker_id: str,
        *,
        max: int = 1,
        wait: float = 0.0,
        idempotency_key: str | None = None,
    ) -> list[TaskInfo]:
        """Leases up to ``max`` tasks offered on ``queue`` to ``worker_id``, waiting up to
        ``wait`` seconds (at most 30) when none is offered: a long poll. Its answer lost and
        sent again (the retries do), it answers the tasks its first sending leased."""
        body = PollRequest(queue=queue, workerId=worker_id, max=max, waitSeconds=wait)
        answer = await self._send("POST", TASKS + "poll", PollResponse, body=body,
                                  key=idempotency_key, within=wait + self.timeout)  # fmt: skip
        return answer.tasks

    async def heartbeat_task(self, token: str, details: Any = None) -> HeartbeatResponse:
        """Extends the task's lease; ``wanted`` False: stop working on it (the flow was stopped
        or canceled, or the lease is over). ``details``: progress to show (JSON)."""
        body = HeartbeatRequest(taskToken=token, details=details)
        return await self._send("POST", TASKS + "heartbeat", HeartbeatResponse, body=body)

    async def complete_task(
        self,
        token: str,
        status: Literal["success", "fail", "running"] = "success",
        *,
        result: str = "",
        context: Mapping[str, Any] | None = None,
        context_removed: Sequence[str] = (),
        message: str = "",
        code: int | None = None,
        operation_id: str | None = None,
        parameters: str | None = None,
    ) -> CompleteResponse:
        """The task's outcome: success or fail (``code``, default 40109, and ``message``), or
        running: a polling node's run submitted ``operation_id``, or a poll found it still
        running. Refused with NotFound (40137) for no such task, Conflict (40138) when the
        lease is over or the task was completed already; pydantic's ValidationError, before
        anything is sent, for what the server would refuse (a message over 1,000 characters, a
        context key flowlog sets itself, a value it cannot store)."""
        body = CompleteRequest(
            taskToken=token, status=status, result=result, context=dict(context or {}),
            contextRemoved=list(context_removed), message=message, code=code,
            operationId=operation_id, parameters=parameters,
        )  # fmt: skip
        return await self._send("POST", TASKS + "complete", CompleteResponse, body=body)

    async def queues(self) -> list[QueueInfo]:
        """The queues: tasks offered, held, the oldest's age, workers seen in the last minute."""
        return (await self._send("GET", TASKS + "queues", QueueList)).queues

    def worker(
        self,
        queue: str,
        *,
        definitions: Iterable[WorkflowDefinition] = (),
        executors: Mapping[str, Executor] | None = None,
        polls: Mapping[str, PollFunction] | None = None,
        concurrency: int = 1,
        worker_id: str | None = None,
        wait: float = 20.0,
        grace: float = 30.0,
    ) -> Worker:
        """A worker that runs the tasks of ``queue`` with Python executors (docs/client.md,
        "Workers"): those of the nodes of ``definitions`` offered on the queue, and, by node
        name, ``executors`` and ``polls`` (for definitions registered as JSON).
        ``concurrency`` tasks at once; ``wait``: each long poll's seconds; ``grace``: how long
        a stop waits for running executors. ``await worker.run()`` until ``worker.stop()``,
        or ``async with client.worker(...):`` to run it meanwhile."""
        from flowlog.client.worker import Worker

        return Worker(
            self, queue, definitions=definitions, executors=executors, polls=polls,
            concurrency=concurrency, worker_id=worker_id, wait=wait, grace=grace,
        )  # fmt: skip
