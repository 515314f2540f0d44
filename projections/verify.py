"""Verify: fold every stream of the log and compare with the projection tables.

Everything is read in one REPEATABLE READ snapshot: the inline projection commits with the
events, so in any snapshot the tables must equal the fold of the log exactly, even while the
service runs. Each difference is reported; none means no drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from flowlog.eventstore import EventStore, RecordedEvent
from flowlog.projections.bulk import Projector, prefix_range
from flowlog.projections.bulk import Q as B
from flowlog.projections.prefixed import streams_under
from flowlog.projections.rebuild import Q as R
from flowlog.projections.rows import DefinitionRow, NodeRow, WorkflowRow

_BATCH = 500
_PREFETCH = 5000


@dataclass
class VerifyReport:
    flows: int = 0
    events: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


async def verify(store: EventStore, projector: Projector, *, progress: bool = True) -> VerifyReport:
    report = VerifyReport()
    bar = tqdm(desc="verify", unit="event", unit_scale=True, disable=not progress)
    async with (
        store.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        expected: dict[str, tuple[WorkflowRow, list[NodeRow]]] = {}
        prefix, upper = prefix_range(projector.flow_prefix)
        current: list[RecordedEvent] = []
        async for row in conn.cursor(B.stream_events, prefix, upper, prefetch=_PREFETCH):
            event = RecordedEvent(*row)
            if current and current[-1].stream_id == event.stream_id:
                _check_order(current[-1], event, report)
            elif current:
                _fold_into(expected, projector, current, report)
                current = []
                if len(expected) >= _BATCH:
                    await _compare(conn, expected, report)
                    expected = {}
            current.append(event)
            bar.update()
        if current:
            _fold_into(expected, projector, current, report)
        await _compare(conn, expected, report)
        rows = await conn.fetchval(R.workflow_count)
        if rows != report.flows:
            orphans = [r["id"] for r in await conn.fetch(R.orphan_workflows, prefix)]
            report.differences.append(
                f"workflows holds {rows} rows for {report.flows} flows in the log; "
                f"rows without a stream: {orphans}"
            )
        for drift in await conn.fetch(R.counts_drift):
            report.differences.append(
                f"workflow_counts {drift['tenant_id']!r}/{drift['name']}/"
                f"{drift['biz_type']}/{drift['status']}: counted {drift['counted']}, "
                f"rows {drift['actual']}"
            )
        await _compare_definitions(conn, projector, report)
    bar.close()
    return report


def _check_order(previous: RecordedEvent, event: RecordedEvent, report: VerifyReport) -> None:
    """A stream's events must come in version order in the log's order (docs/eventstore.md,
    "Each stream in order"); only a log restored with its transaction ids into a cluster
    whose counter was behind them, then appended to, breaks that."""
    if event.checkpoint <= previous.checkpoint:
        report.differences.append(
            f"stream {event.stream_id}: version {event.version} sorts before version "
            f"{previous.version} in the log's order ({event.checkpoint} <= "
            f"{previous.checkpoint}): the log was appended to while it held transaction ids "
            "ahead of the server's (restored into another cluster); re-import it from an export"
        )


def _fold_into(
    expected: dict[str, tuple[WorkflowRow, list[NodeRow]]],
    projector: Projector,
    events: Sequence[RecordedEvent],
    report: VerifyReport,
) -> None:
    report.events += len(events)
    rows = projector.fold_flow(events)
    if rows is not None:
        expected[rows[0].id] = rows
        report.flows += 1


async def _compare(
    conn: Any, expected: dict[str, tuple[WorkflowRow, list[NodeRow]]], report: VerifyReport
) -> None:
    if not expected:
        return
    ids = list(expected)
    tables = {r["id"]: WorkflowRow(*r) for r in await conn.fetch(R.workflows_by_id, ids)}
    nodes: dict[str, dict[str, NodeRow]] = {}
    for r in await conn.fetch(R.nodes_by_flow, ids):
        node = NodeRow(*r)
        nodes.setdefault(node.flow_id, {})[node.id] = node
    for flow_id, (flow, flow_nodes) in expected.items():
        table = tables.get(flow_id)
        if table is None:
            report.differences.append(f"workflow {flow_id}: missing from workflows")
        else:
            report.differences += _row_diff(f"workflow {flow_id}", flow, table)
        stored = nodes.get(flow_id, {})
        for node in flow_nodes:
            found = stored.pop(node.id, None)
            if found is None:
                report.differences.append(f"node {node.id}: missing from workflow_nodes")
            else:
                report.differences += _row_diff(f"node {node.id}", node, found)
        for extra in stored:
            report.differences.append(f"node {extra}: in workflow_nodes but not in the log")


def _row_diff(what: str, log: tuple[Any, ...], table: tuple[Any, ...]) -> list[str]:
    fields = getattr(log, "_fields", ())
    return [
        f"{what}: {name} is {theirs!r} in the table, {ours!r} in the log"
        for name, ours, theirs in zip(fields, log, table, strict=True)
        if ours != theirs
    ]


async def _compare_definitions(conn: Any, projector: Projector, report: VerifyReport) -> None:
    streams = await streams_under(conn, projector.definition_prefix)
    expected = {
        d.version: d for events in streams.values() for d in projector.definition_rows(events)
    }
    stored = {r["version"]: DefinitionRow(*r) for r in await conn.fetch(R.all_definitions)}
    for version in expected.keys() | stored.keys():
        ours, theirs = expected.get(version), stored.get(version)
        if ours is None or theirs is None:
            side = "the log" if ours is None else "workflow_definitions"
            report.differences.append(f"definition {version}: missing from {side}")
        else:
            report.differences += _row_diff(f"definition {version}", ours, theirs)
