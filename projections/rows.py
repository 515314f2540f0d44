"""The rows of the projection tables, column for column (the SQL contract, docs/sql.md).

The workflow domain turns a flow's state into these rows; the projections write them inline,
bulk-load them on rebuild, compare them on verify, and read them for list and detail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

APPEND_TIME = datetime(1, 1, 2, tzinfo=UTC)
"""Placeholder for "the time of the append that writes this row": replaced, inside the
append's statement, by its recorded time (the fold of an append not yet recorded uses it).
Not 0001-01-01: asyncpg sends datetime.min as -infinity."""


class WorkflowRow(NamedTuple):
    id: str
    name: str
    biz_id: str
    biz_type: str
    status: str
    tenant_id: str
    definition_version: str
    context: dict[str, Any]
    error_code: int | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    stream_version: int
    parent_id: str | None = None
    """A child flow's parent (docs/sql.md, "Children"); None for every other flow."""
    parent_node_id: str | None = None
    child_index: int | None = None
    branch: str | None = None


class NodeRow(NamedTuple):
    id: str
    flow_id: str
    sequence: int
    node_key: str
    name: str
    kind: str
    status: str
    attempt: int
    operation_id: str | None
    parameters: str | None
    result: str
    error_code: int | None
    error_message: str | None
    start_time: datetime
    end_time: datetime | None
    stream_version: int


class DefinitionRow(NamedTuple):
    name: str
    version: str
    node_names: list[str]
    definition: dict[str, Any]
    registered_at: datetime
    tenant_id: str | None
    """Who owns the name (its first version's tenant): None for a definition from code, ""
    for one shared by every tenant."""


WORKFLOW_COLUMNS = WorkflowRow._fields
NODE_COLUMNS = NodeRow._fields
