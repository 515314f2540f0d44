"""What the console reads beyond the list and detail queries of ``projections.reads``: counts
by status, the current node of listed flows, definitions. Statements in sql/queries/console.sql.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventstore.pool import Executor
from projections.rows import DefinitionRow
from sql import load_queries


@dataclass(frozen=True, slots=True)
class ConsoleQueries:
    status_counts: str
    definition_counts: str
    current_nodes: str
    definition_version: str
    definition_names: str


Q = load_queries(ConsoleQueries, "console")


@dataclass(frozen=True, slots=True)
class CurrentNode:
    name: str
    status: str


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


async def current_nodes(executor: Executor, flow_ids: Sequence[str]) -> dict[str, CurrentNode]:
    """The latest node execution of each flow (flows that ran none are absent)."""
    if not flow_ids:
        return {}
    rows = await executor.fetch(Q.current_nodes, list(flow_ids))
    return {row["flow_id"]: CurrentNode(row["name"], row["status"]) for row in rows}


async def definition_version(executor: Executor, version: str) -> DefinitionRow | None:
    row = await executor.fetchrow(Q.definition_version, version)
    return None if row is None else DefinitionRow(*row)


async def definition_names(executor: Executor, tenant: str | None) -> list[str]:
    """The names of the definitions ``tenant`` may see (None: all)."""
    return [row["name"] for row in await executor.fetch(Q.definition_names, tenant)]
