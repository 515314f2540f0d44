"""What an executor's run or a poll comes to, as the command that records it.

Shared by the reactor (which runs executors and first polls) and the parking lot (which polls
the flows waiting on their operations).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from app.workflow.decide import Command, RecordFailure, RecordSuccess
from app.workflow.definition import NodeDefinition, NodeKind
from app.workflow.errors import Code, NodeError
from app.workflow.executor import DEFAULT_SUCCESS_TEXT, Failed, FlowContext, NodeHandle, Running
from app.workflow.state import FlowState, NodeExecution


def wake_time(value: Any, now: datetime) -> datetime:
    """When a timer node's executor said the flow moves on; ValueError if it said nothing
    usable."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timer node's executor returned a datetime without a time zone")
        return value
    if isinstance(value, timedelta):
        return now + value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return now + timedelta(seconds=value)
    raise ValueError(
        "a timer node's executor must return when to move on (a datetime, a timedelta or "
        f"seconds), not {type(value).__name__}"
    )


async def call(node: NodeDefinition, handle: NodeHandle, context: FlowContext) -> Any:
    if node.timeout is None or node.kind is NodeKind.POLLING:
        return await node.executor(handle, context)
    async with asyncio.timeout(node.timeout):
        return await node.executor(handle, context)


def handle_of(
    state: FlowState, running: NodeExecution, callback_token: str | None = None
) -> NodeHandle:
    return NodeHandle(
        flow_id=state.flow_id,
        node_id=running.node_id,
        key=running.key,
        name=running.name,
        kind=running.kind,
        attempt=running.attempt,
        operation_id=running.operation_id,
        callback_token=callback_token,
    )


def success(running: NodeExecution, handle: NodeHandle, context: FlowContext) -> RecordSuccess:
    return RecordSuccess(
        running.node_id,
        result=handle.result or DEFAULT_SUCCESS_TEXT + "\n",
        parameters=handle.parameters,
        changes=context.changes,
        removed=context.removed,
    )


def failure(
    running: NodeExecution, handle: NodeHandle, context: FlowContext, code: int, message: str
) -> RecordFailure:
    handle.record(message)
    return RecordFailure(
        running.node_id,
        code,
        message,
        result=handle.result,
        parameters=handle.parameters,
        changes=context.changes,
        removed=context.removed,
    )


async def poll_once(
    state: FlowState, running: NodeExecution, node: NodeDefinition, now: Any
) -> Command | Running:
    """Asks the operation of a polling node how it is going: Running (nothing to record), or
    the outcome to record (success, failure, or the polling deadline passed)."""
    assert node.poll is not None
    assert running.operation_id is not None
    handle = handle_of(state, running)
    context = FlowContext(state.context)
    if running.poll_deadline is not None and now >= running.poll_deadline:
        # In the result too, as every other failure (and the seed) records its message.
        return failure(running, handle, context, Code.POLLING_TIMEOUT,
                       "workflow node polling time out")  # fmt: skip
    try:
        result = await node.poll(handle, context, running.operation_id)
    except NodeError as exc:
        return failure(running, handle, context, exc.code, exc.message)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return failure(running, handle, context, Code.NODE_FAILED, f"{type(exc).__name__}: {exc}")
    if isinstance(result, Running):
        return result
    if isinstance(result, Failed):
        return failure(running, handle, context, result.code, result.message)
    handle.record(result.result)
    return success(running, handle, context)
