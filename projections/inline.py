"""Inline projection: the statements that bring the tables up to date with one append.

They run inside the append's own SQL statement (``eventstore.AppendAlso``), so a read after a
write sees it and the tables never lag the log. Each write is idempotent: a row carries the
stream version it reflects and is never replaced by an older one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from projections.queries import Q
from projections.rows import NodeRow, WorkflowRow

SHARDS = 16

Statement = tuple[str, tuple[Any, ...]]


def shard_of(flow_id: str) -> int:
    """The counter shard of a flow (stable across processes and restarts)."""
    return zlib.crc32(flow_id.encode()) % SHARDS


def flow_statements(
    before: WorkflowRow | None,
    after: WorkflowRow,
    started: Sequence[NodeRow],
    changed: Sequence[NodeRow],
) -> list[Statement]:
    """What the append of a flow's events changes: its row, the node executions it
    ``started`` and those it ``changed``, and the counts when the status changed."""
    statements: list[Statement]
    if before is None:
        statements = [(Q.insert_workflow, tuple(after))]
    else:
        statements = [
            (Q.update_workflow, (after.id, after.status, after.context, after.error_code,
                                 after.error_message, after.stream_version)),
        ]  # fmt: skip
    # One statement per node (an append starts at most one and changes at most one): plain
    # index lookups, where a join with a set of rows could choose to scan the table.
    statements += [(Q.insert_node, tuple(node)) for node in started]
    statements += [(Q.update_node, _node_change(node)) for node in changed]
    changes = _count_changes(before, after)
    if changes:
        statements.append((Q.add_counts, (changes, shard_of(after.id))))
    return statements


def _node_change(node: NodeRow) -> tuple[Any, ...]:
    return (node.id, node.status, node.operation_id, node.parameters, node.result,
            node.error_code, node.error_message, node.end_time, node.stream_version)  # fmt: skip


def _count_changes(before: WorkflowRow | None, after: WorkflowRow) -> list[dict[str, Any]]:
    if before is not None and before.status == after.status:
        return []
    changes = [_count(after, 1)]
    if before is not None:
        changes.append(_count(before, -1))
    return changes


def _count(row: WorkflowRow, change: int) -> dict[str, Any]:
    return {
        "tenant_id": row.tenant_id,
        "name": row.name,
        "biz_type": row.biz_type,
        "status": row.status,
        "change": change,
    }


def definition_statement(
    name: str, version: str, node_names: Sequence[str], described: dict[str, Any]
) -> Statement:
    return (Q.upsert_definition, (name, version, list(node_names), described))
