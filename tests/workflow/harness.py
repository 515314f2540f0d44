"""A pure, in-memory driver of decide + evolve, for tests of the core without a database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flowlog.workflow.commands import Command, CreateFlow
from flowlog.workflow.decide import decide, decide_and_advance
from flowlog.workflow.definition import WorkflowDefinition
from flowlog.workflow.events import FlowEvent
from flowlog.workflow.fold import evolve, fold
from flowlog.workflow.state import FlowState

REACTOR = ("Advance", "Interrupt", "RecordSubmitted", "RecordSuccess", "RecordFailure",
           "RecordCanceled", "RecordWaiting", "Wake")  # fmt: skip

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Memory:
    definition: WorkflowDefinition
    now: datetime = T0
    state: FlowState | None = None
    history: list[tuple[FlowEvent, datetime]] = field(default_factory=list)

    def run(self, command: Command) -> list[FlowEvent]:
        """Decides and applies, as the service (operators) or the reactor (outcomes) would."""
        if type(command).__name__ in REACTOR:
            events = decide_and_advance(self.state, command, self.definition, self.now)
        else:
            events = decide(self.state, command, self.definition, self.now)
        for event in events:
            self.state = evolve(self.state, event, self.now)
            self.history.append((event, self.now))
        return events

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)

    @property
    def flow(self) -> FlowState:
        assert self.state is not None
        return self.state

    def refolded(self) -> FlowState | None:
        return fold(self.history)

    def types(self) -> list[str]:
        return [type(e).__name__ for e, _ in self.history]


def created(definition: WorkflowDefinition, **context: object) -> Memory:
    memory = Memory(definition)
    memory.run(CreateFlow("f1", "biz-1", "cluster", "tenant-1", dict(context)))
    return memory
