"""What a reactor did: counters, and a summary line a minute so that a worker's log says it
is alive and working (each node's run is logged at DEBUG)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields

from flowlog.workflow.errors import Code
from flowlog.workflow.events import FlowEvent, FlowFailed, FlowFinished, NodeFailed

log = logging.getLogger("flowlog.workflow.reactor")


@dataclass
class Activity:
    nodes_run: int = 0
    """Executors this reactor ran."""
    nodes_failed: int = 0
    """Node failures it recorded (executors' own, timeouts, polls that failed)."""
    nodes_interrupted: int = 0
    """Nodes it found abandoned by a lost worker and recorded as interrupted (40110)."""
    flows_finished: int = 0
    flows_failed: int = 0
    """Flows it ended in Error."""

    def recorded(self, events: list[FlowEvent]) -> None:
        """Counts what an append of this reactor's recorded."""
        for event in events:
            match event:
                case NodeFailed(error_code=Code.NODE_INTERRUPTED):
                    self.nodes_interrupted += 1
                case NodeFailed():
                    self.nodes_failed += 1
                case FlowFinished():
                    self.flows_finished += 1
                case FlowFailed():
                    self.flows_failed += 1

    def since(self, earlier: Activity) -> dict[str, int]:
        return {f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)}

    def copy(self) -> Activity:
        return Activity(**{f.name: getattr(self, f.name) for f in fields(self)})


async def report(
    activity: Activity, owner: str, every: float, now: Callable[[], dict[str, int]]
) -> None:
    """Logs, every ``every`` seconds, what happened since the last line (INFO), until
    cancelled. ``now()`` gives the reactor's figures of the moment (flows it drives, its
    concurrency limit)."""
    last = activity.copy()
    while True:
        await asyncio.sleep(every)
        current = activity.copy()
        log.info(
            "reactor summary",
            extra={"owner": owner, "seconds": every, **now(), **current.since(last)},
        )
        last = current
