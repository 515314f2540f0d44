"""The projections' bulk reads: the streams of a range of stream ids read whole, stream by
stream, in one snapshot (rebuild, verify, the small projections), and a rebuild's load of a
range: each stream folded into rows and the rows COPY'd into the copies of the tables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flowlog.eventstore import RecordedEvent
from flowlog.eventstore.pool import Connection
from flowlog.projections.rows import DefinitionRow, NodeRow, WorkflowRow
from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class BulkQueries:
    stream_events: str
    stream_id_sample: str
    stream_ids: str


Q = load_queries(BulkQueries, "bulk")

COPY_SUFFIX = "_rebuild"
"""The copies of the projection tables that a rebuild loads and swaps in."""
_CURSOR_PREFETCH = 5000
_COPY_BATCH = 20_000

FlowRows = tuple[WorkflowRow, list[NodeRow]]


@dataclass(frozen=True, slots=True)
class Projector:
    """How the domain turns streams into rows (the same mapping as the inline projection).
    Its functions are module-level, so that a rebuild's job processes get them by name."""

    flow_prefix: str
    fold_flow: Callable[[Sequence[RecordedEvent]], FlowRows | None]
    definition_prefix: str
    definition_rows: Callable[[Sequence[RecordedEvent]], list[DefinitionRow]]


def prefix_range(prefix: str) -> tuple[str, str]:
    """The range [lower, upper) of the stream ids that begin with ``prefix``: stream ids are in
    byte order (COLLATE "C"), so the prefix is a range of the stream index."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


async def streams(conn: Connection, lower: str, upper: str) -> AsyncIterator[list[RecordedEvent]]:
    """The events of every stream in [lower, upper), one stream at a time."""
    current: list[RecordedEvent] = []
    cursor = conn.cursor(Q.stream_events, lower, upper, prefetch=_CURSOR_PREFETCH)
    async for row in cursor:
        event = RecordedEvent(*row)
        if current and current[-1].stream_id != event.stream_id:
            yield current
            current = []
        current.append(event)
    if current:
        yield current


async def load_flows(
    reader: Connection,
    writer: Any,
    projector: Projector,
    lower: str,
    upper: str,
    counted: Callable[[int], None],
) -> int:
    """Folds every flow stream in [lower, upper) that ``reader``'s snapshot sees into rows and
    COPYs them into the copies through ``writer``; returns the events read (``counted`` hears
    of them as they are folded)."""
    events = 0
    flows: list[WorkflowRow] = []
    nodes: list[NodeRow] = []
    # One COPY in flight while the next batch is read and folded: the server loads one batch
    # while this process folds the next.
    copying: asyncio.Task[None] | None = None
    try:
        async for stream in streams(reader, lower, upper):
            rows = projector.fold_flow(stream)
            events += len(stream)
            counted(len(stream))
            if rows is None:
                continue
            flows.append(rows[0])
            nodes.extend(rows[1])
            if len(flows) + len(nodes) >= _COPY_BATCH:
                if copying is not None:
                    await copying
                copying = asyncio.create_task(copy_rows(writer, flows, nodes))
                flows, nodes = [], []
        if copying is not None:
            await copying
    finally:
        if copying is not None and not copying.done():
            copying.cancel()
            await asyncio.gather(copying, return_exceptions=True)
    await copy_rows(writer, flows, nodes)
    return events


async def copy_rows(conn: Any, flows: list[WorkflowRow], nodes: list[NodeRow]) -> None:
    if flows:
        await conn.copy_records_to_table("workflows" + COPY_SUFFIX, records=flows)
    if nodes:
        await conn.copy_records_to_table("workflow_nodes" + COPY_SUFFIX, records=nodes)
