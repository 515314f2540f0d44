"""What flows wait for on flow control (docs/workers.md, "Flow control"), as the console shows
it: a flow's page asks admission's own ``waiting_for`` (the REST detail's ``waitingFor``), the
flows page asks once for all its rows (``flows_waiting_slots`` in sql/queries/console.sql).

Only a running flow (Processing) of a definition with limits can wait on one: for the others
nothing is asked. Who waits is a row of ``flow_slots``, not an event: it is always now's,
whatever version of a flow the page shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from flowlog.console.reads import Q
from flowlog.eventstore.pool import Executor
from flowlog.projections.rows import WorkflowRow
from flowlog.workflow.admission import Waiting, waiting_for, waiting_of
from flowlog.workflow.definition import Registry, WorkflowDefinition


def may_wait(row: WorkflowRow, registry: Registry) -> bool:
    return row.status == "Processing" and registry.limited(row.name)


async def flow_limits(
    executor: Executor, row: WorkflowRow, registry: Registry
) -> tuple[Waiting, ...]:
    """What the flow of ``row`` waits for now (nothing if it holds what it needs)."""
    if not may_wait(row, registry):
        return ()
    definition = registry.by_version(row.definition_version)
    return tuple(named(w, definition) for w in await waiting_for(executor, row.id, definition))


async def listed_limits(
    executor: Executor, rows: Sequence[WorkflowRow], registry: Registry, tenant: str | None
) -> dict[str, tuple[Waiting, ...]]:
    """What each listed flow that waits on flow control waits for, by flow id: one query for
    the page (none when no listed flow may wait); ``tenant`` (None: any) is asked again of
    the slots themselves."""
    asked = {row.id: row for row in rows if may_wait(row, registry)}
    if not asked:
        return {}
    found: dict[str, list[Waiting]] = {}
    for record in await executor.fetch(Q.flows_waiting_slots, list(asked), tenant):
        row = asked[record["flow_id"]]
        definition = registry.by_version(row.definition_version)
        found.setdefault(row.id, []).append(named(waiting_of(record, definition), definition))
    return {flow_id: tuple(waits) for flow_id, waits in found.items()}


def named(waiting: Waiting, definition: WorkflowDefinition | None) -> Waiting:
    """A node's limit named by the node's name, as the console names nodes everywhere (the
    REST detail names its key: the first node's is always "start")."""
    node = None
    if definition is not None and waiting.of.startswith("node "):
        node = definition.nodes.get(waiting.of.removeprefix("node "))
    return waiting if node is None else replace(waiting, of=f"node {node.name}")
