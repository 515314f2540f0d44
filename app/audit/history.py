"""A flow's history for people: each event with when, who, why and what, read through SQL's
``flow_history()`` so that the CLI, the REST API and psql say the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowlog.audit.queries import Q
from flowlog.eventstore.pool import Executor
from flowlog.times import audit_time

LAST_VERSION = 2**62


@dataclass(frozen=True, slots=True)
class HistoryLine:
    version: int
    position: int
    recorded_at: datetime
    type: str
    actor: str
    reason: str
    request_id: str | None
    trace_id: str | None
    summary: str
    data: dict[str, Any]
    metadata: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """One line of ``flowlog history --json``."""
        return {
            "version": self.version,
            "position": self.position,
            "time": audit_time(self.recorded_at),
            "type": self.type,
            "actor": self.actor,
            "reason": self.reason,
            "requestId": self.request_id,
            "traceId": self.trace_id,
            "summary": self.summary,
            "data": self.data,
            "metadata": self.metadata,
        }


async def read_history(
    executor: Executor, flow_id: str, first: int = 1, last: int = LAST_VERSION
) -> list[HistoryLine]:
    """The flow's events from version ``first`` to ``last``, oldest first (empty: no flow)."""
    rows = await executor.fetch(Q.history, flow_id, first, last)
    return [HistoryLine(**dict(row)) for row in rows]


_COLUMNS = ("version", "position", "time (UTC)", "actor", "what", "why")


def history_table(lines: Sequence[HistoryLine]) -> str:
    """A fixed-width table, one event a row."""
    rows = [
        (
            str(line.version),
            str(line.position),
            line.recorded_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            line.actor,
            line.summary,
            line.reason,
        )
        for line in lines
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    out = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)
