"""What an executor's run or a poll comes to, as the command that records it.

Shared by the reactor (which runs executors and first polls), the parking lot (which polls
the flows waiting on their operations) and the Python worker of task queues
(app/client/worker.py), so that an executor's outcome is the same wherever it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flowlog.storable import NODE_ERROR_CODES, shown, text_problem
from flowlog.times import Clock
from flowlog.workflow.commands import (
    Command,
    RecordFailure,
    RecordSubmitted,
    RecordSuccess,
    RecordWaiting,
)
from flowlog.workflow.definition import NodeDefinition, NodeKind
from flowlog.workflow.errors import Code, NodeError
from flowlog.workflow.executor import (
    DEFAULT_SUCCESS_TEXT,
    Failed,
    FlowContext,
    NodeHandle,
    Running,
    context_problem,
)
from flowlog.workflow.state import FlowState, NodeExecution


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


def success(handle: NodeHandle, context: FlowContext) -> RecordSuccess:
    return RecordSuccess(
        handle.id,
        result=handle.result or DEFAULT_SUCCESS_TEXT + "\n",
        parameters=handle.parameters,
        changes=context.changes,
        removed=context.removed,
    )


def failure(handle: NodeHandle, context: FlowContext, code: int, message: str) -> RecordFailure:
    handle.record(message)
    return RecordFailure(
        handle.id,
        code,
        message,
        result=handle.result,
        parameters=handle.parameters,
        changes=context.changes,
        removed=context.removed,
    )


def raised(
    node: NodeDefinition, handle: NodeHandle, context: FlowContext, exc: BaseException
) -> RecordFailure:
    """What an executor's exception comes to: its timeout (40108), a NodeError's code and
    message, anything else 40109 naming it (a CancelledError too: one the executor raised of
    its own accord, not one that interrupted it, which records nothing)."""
    if isinstance(exc, asyncio.CancelledError):
        return failure(handle, context, Code.NODE_FAILED, "the executor raised CancelledError")
    if isinstance(exc, TimeoutError):
        message = f"node {handle.name} timed out after {node.timeout} s"
        return failure(handle, context, Code.NODE_TIMEOUT, message)
    if isinstance(exc, NodeError):
        return failure(handle, context, exc.code, exc.message)
    return failure(handle, context, Code.NODE_FAILED, f"{type(exc).__name__}: {exc}")


def unexpected(exc: BaseException) -> bool:
    """Whether an executor's exception is one it did not mean to raise (worth a log line): not
    a NodeError, nor its timeout."""
    return not isinstance(exc, NodeError | TimeoutError)


def returned(
    node: NodeDefinition,
    handle: NodeHandle,
    context: FlowContext,
    value: Any,
    clock: Clock,
    waiting_on: str | None = None,
) -> Command:
    """What an executor's return comes to, by its node's kind: a timer's wake-up, a callback's
    wait (``waiting_on``: the id of its token), a polling node's operation, or success (a value
    other than None recorded as result text)."""
    if node.kind is NodeKind.TIMER:
        try:
            wake_at = wake_time(value, clock())
        except (ValueError, OverflowError) as exc:
            return failure(handle, context, Code.NODE_FAILED, str(exc))
        return RecordWaiting(handle.id, wake_at, None, context.changes, context.removed)
    if waiting_on is not None:
        return RecordWaiting(handle.id, None, waiting_on, context.changes, context.removed)
    if node.kind is NodeKind.POLLING:
        if not isinstance(value, str) or not value:
            message = "a polling node's executor must return an operation id"
            return failure(handle, context, Code.NODE_FAILED, message)
        return RecordSubmitted(handle.id, value, context.changes, context.removed)
    if value is not None:
        handle.record(value)
    return success(handle, context)


async def poll_once(
    state: FlowState, running: NodeExecution, node: NodeDefinition, now: Any
) -> Command | Running:
    """Asks the operation of a polling node how it is going: Running (nothing to record), or
    the outcome to record (success, failure, or the polling deadline passed)."""
    assert running.operation_id is not None
    handle = handle_of(state, running)
    context = FlowContext(state.context)
    if running.poll_deadline is not None and now >= running.poll_deadline:
        # In the result too, as every other failure (and the seed) records its message.
        return failure(handle, context, Code.POLLING_TIMEOUT, "workflow node polling time out")
    return await polled(node, handle, context, running.operation_id)


async def polled(
    node: NodeDefinition, handle: NodeHandle, context: FlowContext, operation_id: str
) -> Command | Running:
    """What the node's poll function says of ``operation_id``: Running, or the outcome to
    record (its Finished result, its Failed code and message, or what it raised)."""
    assert node.poll is not None
    try:
        result = await node.poll(handle, context, operation_id)
    except NodeError as exc:
        return failure(handle, context, exc.code, exc.message)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return failure(handle, context, Code.NODE_FAILED, f"{type(exc).__name__}: {exc}")
    if isinstance(result, Running):
        return result
    if isinstance(result, Failed):
        return failure(handle, context, result.code, result.message)
    handle.record(result.result)
    return success(handle, context)


UNSTORABLE = "the executor answered a value flowlog cannot store"
_MESSAGE_LIMIT = 1000

Outcome = RecordSuccess | RecordFailure | RecordSubmitted | RecordWaiting
"""What an executor's run or a poll comes to (the other commands are flowlog's own)."""


def storable(command: Command) -> Command:
    """The outcome as it can be recorded: one holding a value flowlog cannot store (NUL, a lone
    surrogate, an integer beyond 64 bits, NaN, an error code out of range) becomes the node's
    failure with 40134, its message naming the field; nothing of the answer is recorded, and
    the failure is decided as any other (retry policy, fail transition).

    Every outcome of an executor or a poll passes here before it is decided into events: a value
    the append cannot store would fail the append after each run, and the node would run again
    and again, until it passed for a lost worker (40110)."""
    if not isinstance(command, Outcome):
        return command
    problem = next(_problems(command), None)
    return command if problem is None else unstorable_failure(command.node_id, problem)


def unstorable_failure(node_id: str, problem: str) -> RecordFailure:
    """The failure (40134) of an outcome that cannot be stored, for ``problem`` (what and why)."""
    message = _storable_message(f"{UNSTORABLE}: {problem}")
    return RecordFailure(node_id, Code.OUTPUT_UNSTORABLE, message, result=message + "\n")


def _problems(command: Outcome) -> Iterator[str]:
    """What in the outcome cannot be stored, field by field (lazily: the first one is named)."""
    match command:
        case RecordFailure(code=code) if (
            not isinstance(code, int) or isinstance(code, bool) or code not in NODE_ERROR_CODES
        ):
            yield (
                f"code: {shown(code)} is not a node error code (an integer from "
                f"{NODE_ERROR_CODES.start} to {NODE_ERROR_CODES.stop - 1})"
            )
        case RecordWaiting(wake_at=datetime() as wake_at):
            try:
                wake_at.astimezone(UTC)
            except OverflowError:
                yield "wakeAt: out of range in UTC"
    texts: dict[str, object] = {}
    match command:
        case RecordSuccess():
            texts = {"result": command.result, "parameters": command.parameters}
        case RecordFailure():
            texts = {"message": command.message, "result": command.result,
                     "parameters": command.parameters}  # fmt: skip
        case RecordSubmitted():
            texts = {"operationId": command.operation_id}
    for field, text in texts.items():
        if text is None and field == "parameters":
            continue
        found = text_problem(text) if isinstance(text, str) else "not text"
        if found is not None:
            yield f"{field}: {found}"
    yield from _context_problems(command.changes, command.removed)


def _context_problems(changes: Mapping[str, Any], removed: Sequence[str]) -> Iterator[str]:
    if changes and not _plainly_storable(changes):
        yield from _changed_problems(changes)
    for key in removed:
        if not isinstance(key, str) or text_problem(key) is not None:
            yield f"removed context key {shown(key)}: not a key flowlog stores"


def _plainly_storable(changes: Mapping[str, Any]) -> bool:
    """A quick yes for the usual changes, in one encoding (a transition's hot path): orjson
    refuses what is not JSON, keys that are not text, lone surrogates and integers beyond 64
    bits; what it writes shows a NUL as ``\\u0000``, and NaN and Infinity as ``null`` (any
    null, then, is looked at again). A no is only "look closer": the walk names the field."""
    if "" in changes:
        return False
    try:
        encoded = orjson.dumps(dict(changes))
    except (TypeError, orjson.JSONEncodeError):
        return False
    return b"\\u0000" not in encoded and b"null" not in encoded


def _changed_problems(changes: Mapping[str, Any]) -> Iterator[str]:
    for key, value in changes.items():
        found = context_problem(key, value)
        if found is not None:
            yield found


def _storable_message(text: str) -> str:
    """Our own message, stored whatever the names in it hold (a type's name, say), cut short."""
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "..."
