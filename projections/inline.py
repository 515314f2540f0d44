"""Inline projection: the statements that bring the tables up to date with appends.

They run inside the appends' own SQL statement (``EventStore.append_batch``), so a read after
a write sees it and the tables never lag the log. Each write is idempotent: a row carries the
stream version it reflects and is never replaced by an older one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowlog.eventstore.batch import as_columns
from flowlog.projections.queries import Q
from flowlog.projections.rows import NodeRow, WorkflowRow

SHARDS = 16

Statement = tuple[str, tuple[Any, ...]]


def shard_of(flow_id: str) -> int:
    """The counter shard of a flow (stable across processes and restarts)."""
    return zlib.crc32(flow_id.encode()) % SHARDS


@dataclass(frozen=True, slots=True)
class FlowChange:
    """What one append does to a flow's rows: the row ``before`` it (None for a new flow), the
    row ``after`` it, the node executions it ``started`` and those it ``changed``."""

    before: WorkflowRow | None
    after: WorkflowRow
    started: Sequence[NodeRow]
    changed: Sequence[NodeRow]


def flow_statements(changes: Sequence[FlowChange]) -> list[Statement]:
    """The statements that bring the tables up to date with a batch of appends (one change
    per flow): always the same five, each taking its rows as parallel arrays (empty ones do
    nothing), so a batch of any size and mix is one prepared statement."""
    new_flows: list[tuple[Any, ...]] = []
    flows: list[tuple[Any, ...]] = []
    started: list[tuple[Any, ...]] = []
    nodes: list[tuple[Any, ...]] = []
    counts: list[dict[str, Any]] = []
    for change in changes:
        after = change.after
        if change.before is None:
            new_flows.append(tuple(after))
        else:
            # The row in the table is the one before this append (a flow's appends are
            # serialized by its expected version): an unchanged context need not be sent.
            context = None if change.before.context == after.context else after.context
            flows.append((after.id, after.status, context, after.error_code,
                          after.error_message, after.stream_version,
                          after.definition_version))  # fmt: skip
        started += [tuple(node) for node in change.started]
        nodes += [_node_change(node) for node in change.changed]
        counts += _count_changes(change.before, after)
    return [
        (Q.insert_workflows, as_columns(new_flows, len(WorkflowRow._fields))),
        (Q.update_workflows, as_columns(flows, 7)),
        (Q.insert_nodes, as_columns(started, len(NodeRow._fields))),
        (Q.update_nodes, as_columns(nodes, 11)),
        (Q.add_counts, (counts,)),
    ]


def _node_change(node: NodeRow) -> tuple[Any, ...]:
    return (node.id, node.flow_id, node.status, node.operation_id, node.parameters, node.result,
            node.error_code, node.error_message, node.end_time, node.stream_version,
            node.node_key)  # fmt: skip


def _count_changes(before: WorkflowRow | None, after: WorkflowRow) -> list[dict[str, Any]]:
    if before is not None and before.status == after.status:
        return []
    changes = [_count(after, 1)]
    if before is not None:
        changes.append(_count(before, -1))
    return changes


def _count(row: WorkflowRow, change: int) -> dict[str, Any]:
    return {
        "flow_id": row.id,
        "shard": shard_of(row.id),
        "tenant_id": row.tenant_id,
        "name": row.name,
        "biz_type": row.biz_type,
        "status": row.status,
        "change": change,
    }


def definition_statement(
    name: str,
    version: str,
    node_names: Sequence[str],
    described: dict[str, Any],
    owner: str | None,
) -> Statement:
    return (Q.upsert_definition, (name, version, list(node_names), described, owner))
