"""A flow's state: what the fold (app/workflow/fold.py) makes of its events, and what the
decisions, the projections and the console read. Plain frozen data, apart from the fold that
builds it, so that every reader imports the shape without the fold's machinery. Each is made
and copied per event, hence ``quick_init`` (flowlog/records.py)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowlog.records import quick_init
from flowlog.workflow.events import ParentLink


class FlowStatus(enum.StrEnum):
    INITIALIZING = "Initializing"
    PROCESSING = "Processing"
    STOPPED = "Stopped"
    CANCELING = "Canceling"
    CANCELED = "Canceled"
    FINISHED = "Finished"
    ERROR = "Error"


TERMINAL = frozenset({FlowStatus.CANCELED, FlowStatus.FINISHED, FlowStatus.ERROR})


class NodeStatus(enum.StrEnum):
    INITIALIZING = "Initializing"
    PROCESSING = "Processing"
    FINISHED = "Finished"
    ERROR = "Error"
    CANCELED = "Canceled"


@quick_init
@dataclass(frozen=True)
class NodeExecution:
    """One run (attempt) of one node."""

    node_id: str
    sequence: int
    key: str
    name: str
    kind: str
    attempt: int
    series: int
    """Attempts in the current run of automatic retries (the retry policy counts these)."""
    status: NodeStatus
    started_at: datetime
    version: int
    """The stream version of the last event that changed this execution."""
    ended_at: datetime | None = None
    operation_id: str | None = None
    next_poll_at: datetime | None = None
    poll_deadline: datetime | None = None
    result: str = ""
    parameters: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    will_retry: bool = False
    retry_at: datetime | None = None
    waiting: bool = False
    """A timer or callback node whose action ran: it waits, run by no worker."""
    wake_at: datetime | None = None
    """A waiting timer's time to move on."""
    deadline: datetime | None = None
    """A waiting callback's deadline (it fails then), if it has one."""
    callback: str | None = None
    """A waiting callback's token id."""
    event: Mapping[str, Any] | None = None
    """What a waiting callback node's event must be (type and rendered match), and since when
    it waits for it (app/workflow/event_waits.py)."""
    waiting_since: datetime | None = None
    queue: str | None = None
    """The task queue it is offered on (a worker runs it), if any."""


@quick_init
@dataclass(frozen=True)
class Fan:
    """The children of the flow's latest map, parallel or subflow node: counts, not a row per
    child (a map has up to 10,000), so that folding the parent stays cheap. Which child ended
    how is in ``flow_children`` (docs/sql.md)."""

    node_id: str
    """The node execution the children work for now."""
    key: str
    children_of: str
    """The execution that started them: their flow ids derive from it and their index."""
    total: int | None = None
    """How many children the node runs (None until it started the first)."""
    limit: int = 0
    """At most this many running at once."""
    started: int = 0
    finished: int = 0
    failed: frozenset[int] = frozenset()
    """Children that ended in Error or Canceled, as last counted."""
    retrying: bool = False
    """A retry of the node took the children over: its failed ones are yet to run again."""
    patch: tuple[Mapping[str, Any], tuple[str, ...]] | None = None
    """The retry's context changes and removals, for each child it runs again."""
    stopped: bool = False
    """The children were told to stop (the parent stopped)."""

    @property
    def running(self) -> int:
        """Children started and not (yet) counted as ended."""
        return self.started - self.finished - len(self.failed)


@quick_init
@dataclass(frozen=True)
class FlowState:
    flow_id: str
    name: str
    biz_id: str
    biz_type: str
    definition_version: str
    tenant_id: str
    status: FlowStatus
    context: Mapping[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    nodes: tuple[NodeExecution, ...] = ()
    cursor: str | None = "start"
    """The key of the node to run next (or running now); None once the path has ended."""
    failed_path: bool = False
    """The path went through a failure: the flow ends in Error, not Finished."""
    failed_key: str | None = None
    """The node whose failure put the flow on its failure path (Retry reruns it)."""
    error_code: int | None = None
    error_message: str | None = None
    reason: str = ""
    """Why the flow was last stopped or canceled."""
    archived: bool = False
    """Sealed for its archive (FlowArchived): no command applies to it."""
    fan: Fan | None = None
    """The children of the latest node that runs children (kept after it ends: a retry takes
    over its failed children)."""
    parent: ParentLink | None = None
    """A child flow's parent (the flow, its node execution, the child's index and branch)."""
    priority: int = 0
    """0 to 9: among due work, higher first."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def last_node(self) -> NodeExecution | None:
        return self.nodes[-1] if self.nodes else None

    @property
    def running_node(self) -> NodeExecution | None:
        """The node execution in progress (for a polling node: submitted, being polled)."""
        last = self.last_node
        return last if last is not None and last.status is NodeStatus.PROCESSING else None

    def node(self, node_id: str) -> NodeExecution | None:
        for execution in reversed(self.nodes):
            if execution.node_id == node_id:
                return execution
        return None

    def last_execution_of(self, key: str) -> NodeExecution | None:
        for execution in reversed(self.nodes):
            if execution.key == key:
                return execution
        return None


MAX_PRIORITY = 9


def offered_task(state: FlowState) -> tuple[str, str, str | None] | None:
    """The task the flow offers on a queue now: (queue, node id, operation id when it is a
    polling node's poll), or None. A stopped flow keeps its offer (its row says Stopped, and
    polls pass it by); a flow being canceled offers nothing: a reactor records the cancel."""
    running = state.running_node
    if running is None or running.queue is None or running.waiting:
        return None
    if state.status not in (FlowStatus.PROCESSING, FlowStatus.STOPPED):
        return None
    return running.queue, running.node_id, running.operation_id
