"""A reactor's settings: what the environment says (app/config.py) and tests and benchmarks
choose, apart from the reactor so the settings load without it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flowlog.workflow.concurrency_limit import ConcurrencyLimit


@dataclass(frozen=True, slots=True)
class ReactorSettings:
    concurrency: int | None = None
    """A fixed number of flows driven at once by this process (executors running or being
    recorded); None: an adaptive limit between ``min_concurrency`` and ``max_concurrency``,
    steered by how long transitions wait (app/workflow/concurrency_limit.py)."""
    max_concurrency: int = 1000
    """The adaptive limit's ceiling (slow executors take it up to here)."""
    min_concurrency: int = 32
    """The adaptive limit's floor. Below 32 flows in flight, trivial executors' transitions
    wait less but group commit has less to group, and on two cores the flows a second fall
    with them (docs/benchmarks.md, "bench flows": 0.58x at the limit Vegas settles on alone):
    the floor keeps the throughput of the fixed 32 it replaced, and the limit grows above it
    for executors that wait elsewhere."""
    initial_concurrency: int = 32
    """Where the adaptive limit starts."""
    lease_seconds: float = 30.0
    """How long a claim lasts without a heartbeat; a dead worker's flows wait this long."""
    heartbeat_seconds: float = 1.0
    """Heartbeat period (capped at a third of the lease); also how soon a cancel interrupts."""
    poll_interval: float = 2.0
    """The longest the claim loop sleeps without a notification."""
    shutdown_grace: float = 10.0
    """On stop, how long running nodes may take to finish before they are interrupted."""
    definition_limits: Mapping[str, int] = field(default_factory=dict)
    """Optional per-definition caps on flows driven at once by this process."""
    summary_seconds: float = 60.0
    """How often the reactor logs a summary line of what it did (INFO)."""
    poll_concurrency: int = 64
    """Polls of parked flows (polling nodes waiting on their operations) run at once."""

    @property
    def heartbeat(self) -> float:
        return min(self.heartbeat_seconds, self.lease_seconds / 3)

    def limit(self) -> ConcurrencyLimit:
        """The limit these settings make: fixed at ``concurrency`` when it is set."""
        if self.concurrency is not None:
            return ConcurrencyLimit(self.concurrency, self.concurrency, self.concurrency)
        low = min(self.min_concurrency, self.max_concurrency)
        return ConcurrencyLimit(self.initial_concurrency, low, self.max_concurrency)
