"""What the console reads beyond the list and detail queries of ``projections.reads``: counts
by status, the node each listed flow is at (and what it waits for), the flows that wait,
definitions, a parent's children and a child's parent, the task a flow offers on a queue.
Statements in sql/queries/console.sql (and the task API's, sql/queries/tasks.sql).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowlog.console.children import LISTED_KINDS, MAX_LISTED, PARENT_KINDS, History, Kin
from flowlog.console.present import Task, Waiting, WaitingKind
from flowlog.eventstore.pool import Executor
from flowlog.projections.reads import (
    Cursor,
    ListFilter,
    WorkflowPage,
    children_counts,
    children_listed,
    get_workflow,
)
from flowlog.projections.rows import DefinitionRow, WorkflowRow
from flowlog.sql import load_queries
from flowlog.tasks.queries import Q as TASK_QUERIES
from flowlog.workflow.events import FlowEvent, decode
from flowlog.workflow.streams import flow_stream


@dataclass(frozen=True, slots=True)
class ConsoleQueries:
    status_counts: str
    definition_counts: str
    current_nodes: str
    waiting_flows: str
    flows_waiting_slots: str
    definition_version: str
    definition_names: str
    child_status_counts: str
    node_named: str
    streams_events: str
    tasks_held: str
    queues_last_seen: str


Q = load_queries(ConsoleQueries, "console")


@dataclass(frozen=True, slots=True)
class CurrentNode:
    name: str
    status: str
    waiting: Waiting | None = None
    """What the node waits for, when it is a timer or callback whose action has run."""


async def status_counts(
    executor: Executor, tenant: str | None, name: str | None, biz_type: str | None
) -> dict[str, int]:
    rows = await executor.fetch(Q.status_counts, tenant, name, biz_type)
    return {row["status"]: int(row["flows"]) for row in rows}


async def definition_counts(executor: Executor, tenant: str | None) -> dict[str, dict[str, int]]:
    """Flows by definition, then by status."""
    counts: dict[str, dict[str, int]] = {}
    for row in await executor.fetch(Q.definition_counts, tenant):
        counts.setdefault(row["name"], {})[row["status"]] = int(row["flows"])
    return counts


async def current_nodes(executor: Executor, flows: Sequence[WorkflowRow]) -> dict[str, CurrentNode]:
    """The node each flow is at (flows that ran none are absent): its latest execution, but
    for a flow in Error the failure that ended it (not the fail handler that ran after it);
    with what it waits for, unless the flow is being canceled (then it waits for nothing)."""
    if not flows:
        return {}
    failed = [flow.id for flow in flows if flow.status == "Error"]
    canceling = {flow.id for flow in flows if flow.status == "Canceling"}
    rows = await executor.fetch(Q.current_nodes, [flow.id for flow in flows], failed)
    return {
        row["flow_id"]: CurrentNode(
            row["name"],
            row["status"],
            None if row["flow_id"] in canceling else _waiting(row),
        )
        for row in rows
    }


def _waiting(row: Any) -> Waiting | None:
    if row["waiting_since"] is None:
        return None
    kind: WaitingKind = "timer" if row["kind"] == "timer" else "callback"
    return Waiting(row["name"], kind, row["waiting_since"], row["wake_at"], row["deadline"])


async def waiting_flows(
    executor: Executor,
    where: ListFilter,
    kind: WaitingKind,
    *,
    page: int,
    page_size: int,
    after: Cursor | None,
) -> WorkflowPage:
    """One page of the flows that wait on a node of ``kind`` (as ``list_workflows`` pages
    the others: newest first, keyset cursor) and how many match."""
    rows = await executor.fetch(
        Q.waiting_flows, kind, where.status, where.name, where.biz_id, where.biz_type,
        where.tenant_id, where.created_from, where.created_to,
        None if after is None else after.created_at, None if after is None else after.id,
        page_size, 0 if after is not None else (page - 1) * page_size,
    )  # fmt: skip
    total = int(rows[0]["total"]) if rows else 0
    listed = [WorkflowRow(*tuple(row)[1:]) for row in rows if row["id"] is not None]
    cursor = None
    if len(listed) == page_size:
        cursor = Cursor(listed[-1].created_at, listed[-1].id).encode()
    return WorkflowPage(listed, total, page, page_size, cursor)


async def definition_version(executor: Executor, version: str) -> DefinitionRow | None:
    row = await executor.fetchrow(Q.definition_version, version)
    return None if row is None else DefinitionRow(*row)


async def definition_names(executor: Executor, tenant: str | None) -> list[str]:
    """The names of the definitions ``tenant`` may see (None: all)."""
    return [row["name"] for row in await executor.fetch(Q.definition_names, tenant)]


async def child_status_counts(
    executor: Executor, parent: str, tenant: str | None, name: str | None, biz_type: str | None
) -> dict[str, int]:
    """The children of flow ``parent`` by status (a list filtered by parent counts these)."""
    rows = await executor.fetch(Q.child_status_counts, parent, tenant, name, biz_type)
    return {row["status"]: int(row["flows"]) for row in rows}


async def kin(executor: Executor, flow_id: str, started: Sequence[tuple[str, str]]) -> Kin | None:
    """What a parent's page shows of its children now: their counts by the node execution
    that started them, and the children of its parallel and subflow nodes with their events.
    ``started``: the flow's node executions (id, kind) of a kind that runs children; None
    when it has none."""
    if not any(kind in PARENT_KINDS for _, kind in started):
        return None
    counts = await children_counts(executor, flow_id)
    listing = [node_id for node_id, kind in started if kind in LISTED_KINDS]
    listed = await children_listed(executor, flow_id, listing) if listing else []
    shown: dict[str, int] = {}
    kept = []
    for row in listed:  # the first MAX_LISTED of each node: the others are not drawn
        shown[row.parent_node_id] = shown.get(row.parent_node_id, 0) + 1
        if shown[row.parent_node_id] <= MAX_LISTED:
            kept.append(row)
    return Kin(counts, listed, await _histories(executor, [row.id for row in kept]))


async def _histories(executor: Executor, flow_ids: Sequence[str]) -> Mapping[str, History]:
    if not flow_ids:
        return {}
    streams = {flow_stream(flow_id): flow_id for flow_id in flow_ids}
    found: dict[str, list[tuple[FlowEvent, datetime]]] = {flow_id: [] for flow_id in flow_ids}
    for row in await executor.fetch(Q.streams_events, list(streams)):
        event = decode(row["type"], row["data"], row["metadata"])
        found[streams[row["stream_id"]]].append((event, row["recorded_at"]))
    return found


@dataclass(frozen=True, slots=True)
class Parent:
    """A child flow's parent, as the child's page names it."""

    flow_id: str
    row: WorkflowRow | None
    """None: not in the projections (archived, or removed)."""
    node: str | None
    """The name of its node that started the child."""


async def parent_of(executor: Executor, row: WorkflowRow) -> Parent | None:
    if row.parent_id is None:
        return None
    parent = await get_workflow(executor, row.parent_id)
    node = await executor.fetchrow(Q.node_named, row.parent_node_id)
    return Parent(row.parent_id, parent, None if node is None else node["name"])


async def flow_task(executor: Executor, flow_id: str) -> Task | None:
    """The task ``flow_id`` offers on a queue now, if any: read where the page reads its
    history (a replica, when there are some), so that the two agree."""
    row = await executor.fetchrow(TASK_QUERIES.task_of_flow, flow_id)
    if row is None:
        return None
    return Task(
        queue=row["queue"], node_id=row["task_node_id"], offered_at=row["offered_at"],
        worker=row["task_worker"], claimed_at=row["task_claimed_at"],
        expires_at=row["task_expires_at"], details=row["task_details"],
        flow_running=row["status"] == "Processing",
    )  # fmt: skip
