"""What a flow's page shows at one version of its history. Pure: the caller reads the rows.

Everything is folded from the flow's events, so the page at version *v* is the flow as it was
after its *v*-th event: the graph coloured by each node's latest execution then, the timeline
up to then, the context then, and what changed since version *v - 1*. The actions offered are
those the flow's state *now* allows, asked of the same ``decide`` the service uses, so the page
never offers what the server would refuse.

A parent's children are shown at the version too (app/console/children.py): their counts then,
and a parallel node's branches as they were at the time of the version's event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from flowlog.audit.document import state_document
from flowlog.audit.history import HistoryLine
from flowlog.audit.replay import Change, diff_documents
from flowlog.console import graph, timeline
from flowlog.console.children import Group, Kin, by_key, family
from flowlog.console.present import Task, Waiting
from flowlog.console.timeline import Lane
from flowlog.workflow.commands import CancelFlow, Command, RetryFlow, StartFlow, StopFlow
from flowlog.workflow.decide import decide
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.events import FlowEvent, NodeStarted, decode
from flowlog.workflow.fold import evolve, fold
from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution, NodeStatus

ACTIONS: tuple[tuple[str, Command], ...] = (
    ("start", StartFlow()),
    ("stop", StopFlow()),
    ("cancel", CancelFlow()),
    ("retry", RetryFlow()),
)


def definition_version_at(lines: Sequence[HistoryLine], version: int) -> str | None:
    """The definition version the flow ran under after its ``version``-th event: the one it
    was created with, or the last it was migrated to (its graph at that point is that
    version's)."""
    found = None
    for line in lines[:version]:
        if line.type == "FlowCreated":
            found = line.data.get("definition_version")
        elif line.type == "FlowMigrated":
            found = line.data.get("to_version")
    return found


_EVERY_EVENT_CHANGES = frozenset({"version", "updatedAt"})
"""Left out of "what this event changed": every event changes them."""


@dataclass(frozen=True, slots=True)
class NodeMark:
    """How a definition's node looks at a version: its latest execution, if any."""

    key: str
    status: str
    """A node status, ``Waiting`` (failed, an automatic retry is due), ``Interrupted``
    (its worker was lost) or ``Not run``."""
    executions: int
    current: bool


@dataclass(frozen=True, slots=True)
class FlowView:
    flow_id: str
    version: int
    latest: int
    state: FlowState
    line: HistoryLine
    """The event of this version."""
    changes: tuple[Change, ...]
    """What this version's event changed (all of the flow, for version 1)."""
    graph: graph.Graph | None
    marks: Mapping[str, NodeMark]
    timeline: timeline.Timeline
    actions: tuple[str, ...]
    """What the flow's current state allows: start, stop, cancel, retry; approve and reject
    (complete the callback node it waits on, with success or fail)."""
    started_by: str
    callback_node: str | None = None
    """The callback node the flow waits on now (the id approve and reject complete)."""
    waiting: Waiting | None = None
    """What the flow waits for now (a timer or callback node whose action has run)."""
    archived: bool = False
    """Sealed for its archive now (retention): it takes no action."""
    children: tuple[Group, ...] = ()
    """The children of each node execution that started some, at this version."""
    lanes: Mapping[str, tuple[Lane, ...]] = field(default_factory=dict)
    """A parallel node's branches, by the execution that started them: the timeline's lanes."""
    task: Task | None = None
    """The task its running node offers on a queue now, and who holds it."""

    @property
    def is_latest(self) -> bool:
        return self.version == self.latest

    @property
    def counts(self) -> dict[str, Group]:
        """The children the graph counts on each node (its latest execution's)."""
        return by_key(self.children)


def build(
    lines: Sequence[HistoryLine],
    version: int,
    definition: Mapping[str, Any] | None,
    now: datetime,
    kin: Kin | None = None,
    task: Task | None = None,
) -> FlowView:
    """The view of the flow whose whole history is ``lines`` at ``version`` (1..len);
    ``kin``: what the page read of its children, if it has any; ``task``: what it read of
    the task the flow offers on a queue, if any."""
    if not lines or not 1 <= version <= len(lines):
        raise ValueError(f"version {version} is not in a history of {len(lines)} events")
    events = [(_decoded(line), line.recorded_at) for line in lines]
    before: FlowState | None = None
    state: FlowState | None = None
    current: FlowState | None = None
    for index, (event, at) in enumerate(events, start=1):
        current = evolve(current, event, at)
        if index == version - 1:
            before = current
        if index == version:
            state = current
    assert state is not None
    assert current is not None
    before_doc = None if before is None else state_document(before)
    changes = tuple(
        change
        for change in diff_documents(before_doc, state_document(state))
        if change.where not in _EVERY_EVENT_CHANGES
    )
    ended = current.terminal
    until = lines[version - 1].recorded_at if version < len(lines) or ended else now
    drawn = timeline.build(events[:version], until)
    groups = family(events[:version], kin or Kin(), latest=version == len(lines))
    branches = [group for group in groups if group.kind == "parallel"]
    lanes = {
        group.node_id: tuple(
            timeline.lane(child.branch or str(child.index), child.flow_id, child.status,
                          child.events, drawn)
            for child in group.children
        )
        for group in branches
    }  # fmt: skip
    order = _branch_order(events, kin)
    return FlowView(
        flow_id=state.flow_id,
        version=version,
        latest=len(lines),
        state=state,
        line=lines[version - 1],
        changes=changes,
        graph=None if definition is None else graph.layout(definition, order),
        marks=_with_branches(marks(state), branches),
        timeline=drawn,
        actions=allowed_actions(current, now),
        started_by=_started_by(lines),
        callback_node=_callback_node(current),
        waiting=waiting_of(current, lines),
        archived=current.archived,
        children=groups,
        lanes=lanes,
        task=task_of(current, task),
    )


def _decoded(line: HistoryLine) -> FlowEvent:
    return decode(line.type, line.data, line.metadata)


def marks(state: FlowState) -> dict[str, NodeMark]:
    latest: dict[str, NodeExecution] = {}
    counts: dict[str, int] = {}
    for node in state.nodes:
        latest[node.key] = node
        counts[node.key] = counts.get(node.key, 0) + 1
    at = _current_key(state)
    found = {
        key: NodeMark(key, _mark_status(node), counts[key], key == at)
        for key, node in latest.items()
    }
    if at is not None and at not in found:
        found[at] = NodeMark(at, "Not run", 0, True)
    return found


def _branch_order(
    events: Sequence[tuple[FlowEvent, datetime]], kin: Kin | None
) -> dict[str, list[str]]:
    """Each parallel node's branches in their declared order (their children's indexes), the
    same at every version: the definition read back from the database lists them by name."""
    if kin is None:
        return {}
    keys = {e.node_id: e.key for e, _ in events if isinstance(e, NodeStarted)}
    order: dict[str, list[str]] = {}
    for row in sorted(kin.listed, key=lambda r: r.child_index):
        if row.branch is not None and row.parent_node_id in keys:
            named = order.setdefault(keys[row.parent_node_id], [])
            if row.branch not in named:
                named.append(row.branch)
    return order


def _with_branches(found: dict[str, NodeMark], branches: Sequence[Group]) -> dict[str, NodeMark]:
    """The marks of a parallel node's branches too: their nodes run in the branches' child
    flows (as they were then), not in the parent."""
    for group in branches:
        for child in group.children:
            state = fold(child.events)
            if state is not None:
                for key, mark in marks(state).items():
                    found.setdefault(key, mark)
    return found


def _current_key(state: FlowState) -> str | None:
    """The node the flow is at: running now, or due next while the flow is unfinished."""
    if state.running_node is not None:
        return state.running_node.key
    if state.terminal or state.status is FlowStatus.INITIALIZING:
        return None
    return state.cursor


def _mark_status(node: NodeExecution) -> str:
    if node.status is NodeStatus.ERROR and node.will_retry:
        return "Waiting"
    if node.status is NodeStatus.ERROR and node.error_code == Code.NODE_INTERRUPTED:
        return "Interrupted"
    return node.status.value


def allowed_actions(state: FlowState, now: datetime) -> tuple[str, ...]:
    allowed = []
    for name, command in ACTIONS:
        try:
            if decide(state, command, None, now):
                allowed.append(name)
        except WorkflowError:
            continue
    if _callback_node(state) is not None:
        allowed += ["approve", "reject"]
    return tuple(allowed)


def _callback_node(state: FlowState) -> str | None:
    """The callback node that a completion would end now (decide's rule: a running callback
    node of a flow neither ended nor being canceled)."""
    running = state.running_node
    if running is None or running.kind != "callback" or state.terminal:
        return None
    return None if state.status is FlowStatus.CANCELING else running.node_id


def waiting_of(state: FlowState, lines: Sequence[HistoryLine]) -> Waiting | None:
    """What the flow waits for: its running timer or callback node once its action has run,
    since its ``NodeWaiting`` (the last event that changed the node); nothing while the flow
    is being canceled."""
    running = state.running_node
    if running is None or not running.waiting or state.status is FlowStatus.CANCELING:
        return None
    since = next(line.recorded_at for line in lines if line.version == running.version)
    if running.kind == "timer":
        return Waiting(running.name, "timer", since, wake_at=running.wake_at)
    return Waiting(running.name, "callback", since, deadline=running.deadline)


def task_of(state: FlowState, task: Task | None) -> Task | None:
    """The task as the page shows it: that of the node running now (a task read a moment
    after the history may belong to a node the history does not know yet: it is left out),
    with the node's name."""
    running = state.running_node
    if task is None or running is None or running.node_id != task.node_id:
        return None
    return replace(task, node=running.name)


def _started_by(lines: Sequence[HistoryLine]) -> str:
    for line in lines:
        if line.type == "FlowStarted":
            return line.actor
    return ""
