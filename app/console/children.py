"""A parent's children as its page shows them at a version. Pure: the page reads the rows.

Each node execution that started children (a map, parallel or subflow node; a retry's
execution that took over the children of the one it retries counts as that one) is a group:
how many children it runs, and how many finished, failed, were canceled or still run. Now,
the counts are the children's own statuses (their rows); at an earlier version they are what
the parent had counted by then (its ChildrenStarted, ChildrenEnded and ChildrenCommanded
events: a child's end counts once the parent has harvested it). The children of a parallel or
subflow node are few and listed, each as it was at the time of the parent's event shown (its
own events recorded up to then, folded): a parallel node's branches are the timeline's lanes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flowlog.projections.reads import ChildRow
from flowlog.workflow.events import (
    ChildrenCommanded,
    ChildrenEnded,
    ChildrenStarted,
    FlowEvent,
    NodeStarted,
)
from flowlog.workflow.fold import fold

PARENT_KINDS = ("map", "parallel", "subflow")
LISTED_KINDS = ("parallel", "subflow")
"""The kinds whose children are listed one by one (a map's are in the flows list)."""
RUNNING = ("Initializing", "Processing", "Stopped", "Canceling")
MAX_LISTED = 50
"""Children of one node listed on the page (with their lanes); the list has all of them."""

History = Sequence[tuple[FlowEvent, datetime]]


@dataclass(frozen=True, slots=True)
class Kin:
    """What the page read of a parent's children, as they are now."""

    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Children by the node execution that started them, then by status."""
    listed: Sequence[ChildRow] = ()
    """The children of the parent's parallel and subflow nodes, by node and index."""
    histories: Mapping[str, History] = field(default_factory=dict)
    """The events of the children listed, by flow id."""


@dataclass(frozen=True, slots=True)
class Child:
    """A listed child as it was at the parent's moment."""

    flow_id: str
    index: int
    branch: str | None
    status: str | None
    """None: not created by then."""
    events: History = ()
    """Its events recorded up to then."""


@dataclass(frozen=True, slots=True)
class Group:
    """The children of one node execution."""

    node_id: str
    """The execution that started them (their ``parent_node_id``)."""
    key: str
    name: str
    kind: str
    sequence: int
    """That execution's number among the flow's node executions."""
    total: int | None
    """How many children the node runs (None until it started the first)."""
    started: int
    finished: int
    failed: int
    canceled: int
    children: tuple[Child, ...] = ()
    more: int = 0
    """Children of a listed kind left out of ``children`` (beyond MAX_LISTED)."""

    @property
    def running(self) -> int:
        return max(0, self.started - self.finished - self.failed - self.canceled)

    @property
    def not_started(self) -> int:
        return max(0, (self.total or 0) - self.started)

    @property
    def words(self) -> str:
        """``12/40 finished · 1 failed · 5 running``."""
        if self.total is None:
            return "no child started yet"
        parts = [f"{self.finished:,}/{self.total:,} finished"]
        for count, word in ((self.failed, "failed"), (self.canceled, "canceled"),
                            (self.running, "running")):  # fmt: skip
            if count:
                parts.append(f"{count:,} {word}")
        return " · ".join(parts)


@dataclass(slots=True)
class _Tally:
    node_id: str
    key: str
    name: str
    kind: str
    sequence: int
    total: int | None = None
    started: int = 0
    ended: dict[int, str] = field(default_factory=dict)


def family(events: History, kin: Kin, *, latest: bool) -> tuple[Group, ...]:
    """The groups of the parent whose events up to the version shown are ``events``."""
    tallies: dict[str, _Tally] = {}
    group_of: dict[str, str] = {}
    executions = 0
    for event, _ in events:
        match event:
            case NodeStarted():
                executions += 1
                if event.kind in PARENT_KINDS:
                    adopted = group_of.get(event.adopts or "")
                    group_of[event.node_id] = adopted or event.node_id
                    if adopted is None:
                        tallies[event.node_id] = _Tally(
                            event.node_id, event.key, event.name, event.kind, executions
                        )
            case ChildrenStarted() if event.node_id in group_of:
                tally = tallies[group_of[event.node_id]]
                tally.total = event.total
                tally.started = max(tally.started, event.first + event.count)
            case ChildrenEnded() if event.node_id in group_of:
                tallies[group_of[event.node_id]].ended.update(dict(event.ended))
            case ChildrenCommanded(command="retry") if event.node_id in group_of:
                ended = tallies[group_of[event.node_id]].ended
                for index in event.indexes:
                    ended.pop(index, None)
            case ChildrenCommanded(command="cancel") if event.node_id in group_of:
                # The node ended without them: they are canceled, whether or not the
                # parent ever counts their ends.
                ended = tallies[group_of[event.node_id]].ended
                ended.update(dict.fromkeys(event.indexes, "Canceled"))
    until = events[-1][1] if events and not latest else None
    return tuple(_group(t, kin, latest, until) for t in tallies.values())


def _group(tally: _Tally, kin: Kin, latest: bool, until: datetime | None) -> Group:
    if latest:
        statuses = dict(kin.counts.get(tally.node_id, {}))
    else:
        statuses = {}
        for status in tally.ended.values():
            statuses[status] = statuses.get(status, 0) + 1
    started = sum(statuses.values()) if latest else tally.started
    children: list[Child] = []
    more = 0
    if tally.kind in LISTED_KINDS:
        rows = [row for row in kin.listed if row.parent_node_id == tally.node_id]
        more = max(0, len(rows) - MAX_LISTED)
        children = [_child(row, kin.histories.get(row.id, ()), until) for row in rows[:MAX_LISTED]]
    return Group(
        node_id=tally.node_id,
        key=tally.key,
        name=tally.name,
        kind=tally.kind,
        sequence=tally.sequence,
        total=tally.total if tally.total is not None or not started else started,
        started=started,
        finished=statuses.get("Finished", 0),
        failed=statuses.get("Error", 0),
        canceled=statuses.get("Canceled", 0),
        children=tuple(children),
        more=more,
    )


def _child(row: ChildRow, history: History, until: datetime | None) -> Child:
    then = [(event, at) for event, at in history if until is None or at <= until]
    state = fold(then)
    status = None if state is None else state.status.value
    return Child(row.id, row.child_index, row.branch, status, tuple(then))


def by_key(groups: Sequence[Group]) -> dict[str, Group]:
    """The latest group of each node key (what the graph's node counts)."""
    return {group.key: group for group in groups}
