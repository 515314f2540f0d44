"""The small projections beside the flows' (keys, webhooks, schedules, archives, event rules,
received events, event waits): the streams under a prefix read whole, and a table's rows
compared with what the log folds to, as ``flowlog verify`` reports a difference."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

from flowlog.eventstore import RecordedEvent
from flowlog.eventstore.pool import Executor
from flowlog.projections.bulk import Q, prefix_range

K = TypeVar("K", bound=Hashable)


async def streams_under(conn: Executor, prefix: str) -> dict[str, list[RecordedEvent]]:
    """Every stream whose id begins with ``prefix``, with its events in version order (one
    range scan of the stream index)."""
    streams: dict[str, list[RecordedEvent]] = {}
    for row in await conn.fetch(Q.stream_events, *prefix_range(prefix)):
        event = RecordedEvent(*row)
        streams.setdefault(event.stream_id, []).append(event)
    return streams


def drift(
    folds: Mapping[K, object],
    rows: Mapping[K, object],
    label: Callable[[K], str],
    source: str = "its stream",
) -> list[str]:
    """A line for each key whose row in the table is not what the log folds to (or is missing
    on either side), in key order."""
    return [
        f"{label(key)}: the table has {rows.get(key)}, {source} {folds.get(key)}"
        for key in sorted(folds.keys() | rows.keys())  # type: ignore[type-var]
        if folds.get(key) != rows.get(key)
    ]
