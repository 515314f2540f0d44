"""What an executor sees: its node, the flow context, and what a poll function returns.

Executors run **at least once**: a node whose outcome was not recorded (the process died, the
lease was lost) runs again as a new attempt. Write them to be idempotent, as Temporal asks of
activities: check whether the work is already done before doing it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from flowlog.storable import shown, unstorable
from flowlog.workflow.errors import Code

DEFAULT_SUCCESS_TEXT = "Completed."


class FlowContext(MutableMapping[str, Any]):
    """The flow's context: JSON values by key, as the executor reads and changes them.

    Changes are recorded with the node's outcome, so replay restores them exactly. Keys are
    non-empty text and values JSON that flowlog can store (no NUL, lone surrogates, NaN or
    integers beyond 64 bits): they are checked with the outcome, where a value that breaks the
    rule fails the node (40134, naming it), as an answer of an ``http`` service does.
    """

    TRACE_ID = "traceId"
    USER_ID = "userId"
    TENANT_ID = "tenantId"

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        self._changed: dict[str, Any] = {}
        self._removed: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._changed[key] = value
        self._removed.discard(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed.pop(key, None)
        self._removed.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def trace_id(self) -> str | None:
        return self._data.get(self.TRACE_ID)

    @property
    def changes(self) -> dict[str, Any]:
        """Keys set since the executor started, with their new values."""
        return dict(self._changed)

    @property
    def removed(self) -> list[str]:
        """Keys deleted since the executor started."""
        return sorted(self._removed)


def context_problem(key: object, value: Any) -> str | None:
    """Why a flow's context cannot hold ``value`` under ``key`` (``context['k'][0]: NUL
    character``), or None when it can."""
    if key == "":
        return "context['']: an empty key"
    found = unstorable({key: value}, "context")
    if found is not None:
        return f"{found[0]}: {found[1]}"
    try:
        orjson.dumps(value)  # what the walk left alone (a datetime is JSON; an object() is not)
    except TypeError as exc:
        return f"context[{shown(key)}]: not JSON ({exc})"
    return None


def check_json(key: object, value: Any) -> None:
    """TypeError when a flow's context cannot hold ``value`` under ``key``."""
    problem = context_problem(key, value)
    if problem is not None:
        raise TypeError(problem)


class NodeHandle:
    """The node being executed: identity, attempt, and the text it records as its result."""

    def __init__(
        self,
        *,
        flow_id: str,
        node_id: str,
        key: str,
        name: str,
        kind: str,
        attempt: int,
        operation_id: str | None = None,
        callback_token: str | None = None,
    ) -> None:
        self.flow_id = flow_id
        self.id = node_id
        self.key = key
        self.name = name
        self.kind = kind
        self.attempt = attempt
        self.operation_id = operation_id
        self.callback_token = callback_token
        """A callback node's token: hand it to whoever will complete the node."""
        self.parameters: str | None = None
        self._lines: list[str] = []

    def record(self, *results: object) -> None:
        """Appends a line per value to the node's result text (the seed's Record)."""
        for result in results:
            self._lines.append(DEFAULT_SUCCESS_TEXT if result is None else str(result))

    @property
    def result(self) -> str:
        return "".join(line + "\n" for line in self._lines)


@dataclass(frozen=True, slots=True)
class Running:
    """The polled operation is still running."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The polled operation finished; ``result`` is recorded on the node."""

    result: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The polled operation failed."""

    message: str
    code: int = Code.NODE_FAILED


PollResult = Running | Finished | Failed

Executor = Callable[[NodeHandle, FlowContext], Awaitable[Any]]
"""``async def executor(node, ctx)``: a sync node's executor returns when done (raising = the
node fails; a returned value other than None is recorded as result text); a polling node's
executor submits the operation and returns its id (a string); a timer node's executor returns
when the flow moves on (an aware datetime, a timedelta, or seconds); a callback node's executor
hands ``node.callback_token`` to the outside world (its return value is not recorded)."""

PollFunction = Callable[[NodeHandle, FlowContext, str], Awaitable[PollResult]]
"""``async def poll(node, ctx, operation_id)``: reports Running(), Finished(result) or
Failed(message)."""
