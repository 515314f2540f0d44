"""List and detail queries on the projection tables.

Lists are newest first (created_at, then id, descending), filtered by equality on status,
name, biz id, biz type and tenant, and by a created-time range. Pages are numbered from 1; a
keyset cursor (the last row's created time and id) pages deeply without OFFSET. The total of
a list filtered only on tenant, name, biz type and status comes from ``workflow_counts``
(a few rows); with a biz id or a time range, it is counted on the filtered rows.

The WHERE clause is assembled from the fixed fragments below, chosen by which filters are
set; every value is a query parameter.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from flowlog.eventstore.pool import Executor
from flowlog.projections.queries import Q
from flowlog.projections.rows import NodeRow, WorkflowRow

MAX_PAGE_SIZE = 1000

_COLUMNS = (
    "id, name, biz_id, biz_type, status, tenant_id, definition_version, context, error_code, "
    "error_message, created_at, updated_at, stream_version, parent_id, parent_node_id, "
    "child_index, branch"
)
# Filter -> (condition on workflows, condition on workflow_counts or None).
_FRAGMENTS: dict[str, tuple[str, str | None]] = {
    "status": ("status = ${}", "status = ${}"),
    "name": ("name = ${}", "name = ${}"),
    "biz_id": ("biz_id = ${}", None),
    "biz_type": ("biz_type = ${}", "biz_type = ${}"),
    "tenant_id": ("tenant_id = ${}", "tenant_id = ${}"),
    "created_from": ("created_at >= ${}", None),
    "created_to": ("created_at < ${}", None),
    "parent_id": ("parent_id = ${}", None),
}
_AFTER = "(created_at, id) < (${}, ${})"


class BadCursor(ValueError):
    """A paging cursor that flowlog did not write."""


@dataclass(frozen=True, slots=True)
class ListFilter:
    status: str | None = None
    name: str | None = None
    biz_id: str | None = None
    biz_type: str | None = None
    tenant_id: str | None = None
    created_from: datetime | None = None
    """Inclusive."""
    created_to: datetime | None = None
    """Exclusive."""
    parent_id: str | None = None
    """Children of this flow only."""

    def items(self) -> list[tuple[str, Any]]:
        return [
            (f.name, getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) is not None
        ]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: after the row with this created time and id."""

    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = orjson.dumps([self.created_at.isoformat(), self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            created, flow_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            return cls(datetime.fromisoformat(created), str(flow_id))
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise BadCursor(f"not a paging cursor: {text!r}") from exc


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    rows: list[WorkflowRow]
    total: int
    page: int
    page_size: int
    next_cursor: str | None


async def list_workflows(
    executor: Executor,
    where: ListFilter,
    *,
    page: int = 1,
    page_size: int = 10,
    after: Cursor | None = None,
) -> WorkflowPage:
    """One page of flows, newest first, and the total matching ``where``.

    With ``after``, the page starts after that row (and ``page`` only labels the answer).
    """
    if page < 1:
        raise ValueError("page numbers start at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page size must be between 1 and {MAX_PAGE_SIZE}")
    conditions, args = _conditions(where.items(), 0)
    if after is not None:
        conditions.append(_AFTER.format(len(args) + 1, len(args) + 2))
        args += [after.created_at, after.id]
    sql = f"SELECT {_COLUMNS} FROM workflows{_where(conditions)} ORDER BY created_at DESC, id DESC"
    sql += f" LIMIT ${len(args) + 1}"
    args.append(page_size)
    if after is None and page > 1:
        sql += f" OFFSET ${len(args) + 1}"
        args.append((page - 1) * page_size)
    rows = [_workflow(r) for r in await executor.fetch(sql, *args)]
    total = await _total(executor, where)
    cursor = Cursor(rows[-1].created_at, rows[-1].id).encode() if len(rows) == page_size else None
    return WorkflowPage(rows, total, page, page_size, cursor)


async def _total(executor: Executor, where: ListFilter) -> int:
    items = where.items()
    if all(_FRAGMENTS[name][1] is not None for name, _ in items):
        conditions, args = _conditions(items, 1)
        sql = f"SELECT coalesce(sum(count), 0) FROM workflow_counts{_where(conditions)}"
    else:
        conditions, args = _conditions(items, 0)
        sql = f"SELECT count(*) FROM workflows{_where(conditions)}"
    return int(await executor.fetchval(sql, *args))


def _conditions(items: Sequence[tuple[str, Any]], which: int) -> tuple[list[str], list[Any]]:
    conditions, args = [], []
    for name, value in items:
        fragment = _FRAGMENTS[name][which]
        assert fragment is not None
        args.append(value)
        conditions.append(fragment.format(len(args)))
    return conditions, args


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


async def get_workflow(executor: Executor, flow_id: str) -> WorkflowRow | None:
    row = await executor.fetchrow(Q.workflow, flow_id)
    return None if row is None else _workflow(row)


async def get_nodes(executor: Executor, flow_id: str) -> list[NodeRow]:
    return [NodeRow(*row) for row in await executor.fetch(Q.nodes_of, flow_id)]


async def node_names(executor: Executor, version: str) -> list[str] | None:
    names = await executor.fetchval(Q.node_names, version)
    return None if names is None else list(names)


def _workflow(row: Any) -> WorkflowRow:
    return WorkflowRow(*row)


class ChildRow(NamedTuple):
    id: str
    parent_node_id: str
    child_index: int
    branch: str | None
    status: str


async def children_counts(executor: Executor, parent_id: str) -> dict[str, dict[str, int]]:
    """{node execution: {status: children}} of flow ``parent_id``'s children."""
    counts: dict[str, dict[str, int]] = {}
    for row in await executor.fetch(Q.children_counts, parent_id):
        counts.setdefault(row["parent_node_id"], {})[row["status"]] = row["n"]
    return counts


async def children_listed(
    executor: Executor, parent_id: str, node_ids: Sequence[str]
) -> list[ChildRow]:
    """The children of flow ``parent_id`` started by ``node_ids``, in index order."""
    return [ChildRow(*row) for row in await executor.fetch(Q.children_listed, parent_id,
                                                            list(node_ids))]  # fmt: skip
