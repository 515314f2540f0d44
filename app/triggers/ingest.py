"""Receiving a CloudEvent: recorded in the log, deduplicated by tenant, source and id for
24 hours, and the flows of the rules it matches created and started in the same transaction.

Dedupe is the idempotency keys' machinery (app/workflow/idempotency.py): the key is the
event's source and id in the sender's tenant, written by the event's own append statement, so
no crash can separate the record of an event from its key, and it expires with every other key
after 24 hours. Each acceptance is the next event of the stream of that tenant, source and id:
two senders racing with one event append at the same version, and one of them loses (nothing
of it is written) and answers what the winner recorded. The flows' ids are derived from the
stream, the acceptance's version and the rule, so no retry can start one twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Final

import asyncpg

from flowlog.eventstore import (
    AppendAlso,
    NewEvent,
    OrderConflict,
    Transaction,
    WrongExpectedVersion,
)
from flowlog.eventstore.batch import append_batch
from flowlog.triggers.cloudevent import ReceivedEvent
from flowlog.triggers.events import (
    CloudEventReceived,
    Refusal,
    RuleSettings,
    encode,
    event_stream,
    flow_id_for,
)
from flowlog.triggers.rules import BIZ_TYPE, MAX_RULES_PER_TYPE, RenderRefused, flow_of
from flowlog.triggers.store import Q
from flowlog.triggers.waits import EventWaits
from flowlog.workflow import idempotency
from flowlog.workflow.caller import Caller
from flowlog.workflow.commands import CreateFlow
from flowlog.workflow.decide import decide
from flowlog.workflow.errors import Code, DefinitionNotFound, WorkflowError
from flowlog.workflow.events import FlowEvent, FlowStarted
from flowlog.workflow.executor import FlowContext
from flowlog.workflow.fold import evolve
from flowlog.workflow.idempotency import Idempotency, fingerprint
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState
from flowlog.workflow.store import _batch
from flowlog.workflow.task_decisions import no_reactor_needed

log = logging.getLogger(__name__)

DEDUPE_WINDOW: Final = timedelta(hours=24)
_ATTEMPTS = 10

OnRecorded = Callable[[Transaction, str, ReceivedEvent], Awaitable[list[str]]]
"""Runs inside the transaction that records an event, after its append (its ``position`` is
set): the callback nodes waiting for it are completed there (``EventWaits.complete_waits``);
answers the flow ids it completed."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the sender is told, the same again for a duplicate (with ``duplicate`` set)."""

    id: str
    source: str
    matched: bool
    flows: list[str]
    refused: list[Refusal]
    duplicate: bool = False
    completed: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.duplicate:
            return "duplicate"
        if self.refused:
            return "refused"
        return "matched" if self.matched else "unmatched"


def dedupe_key(event: ReceivedEvent) -> Idempotency:
    """The event's key among the tenant's idempotency keys. It has a space, which no
    ``Idempotency-Key`` header may (printable ASCII without spaces): a client's key can
    never take an event's, nor the other way round."""
    digest = hashlib.sha256(f"{event.source}\x00{event.id}".encode()).hexdigest()
    return Idempotency(f"cloudevent {digest}", event.tenant, DEDUPE_WINDOW)


class Ingestion:
    def __init__(
        self, flows: WorkflowService, *, on_recorded: Sequence[OnRecorded] | None = None
    ) -> None:
        """``on_recorded``: what runs inside each recording transaction after the event's
        append; by default, completing the callback nodes that wait for the event
        (app/triggers/waits.py)."""
        self.flows = flows
        self.store = flows.store
        if on_recorded is None:
            on_recorded = (EventWaits(flows.registry, flows.flows).complete_waits,)
        self.on_recorded = tuple(on_recorded)

    async def receive(self, event: ReceivedEvent, caller: Caller) -> Answer:
        """Records ``event`` and starts its rules' flows; the first answer again (``duplicate``)
        for the same tenant, source and id within the dedupe window."""
        key = dedupe_key(event)
        request = fingerprint("cloudevent", event.source, event.id)
        stream = event_stream(event.tenant, event.source, event.id)
        for _ in range(_ATTEMPTS):
            found = await idempotency.find(self.store.pool, key, request)
            if found is not None and found.stream_id is not None and found.version is not None:
                return await self._replayed(found.stream_id, found.version)
            try:
                answer = await self.store.transact(
                    lambda tx: self._record(tx, event, stream, key, request, caller)
                )
            except WrongExpectedVersion:
                continue  # a twin recorded it first: its answer is found above
            except asyncpg.UniqueViolationError as exc:
                if not idempotency.key_taken(exc):
                    raise
                continue
            if answer.flows:
                self.flows.poke()
            log.info(
                "cloudevent received",
                extra={"tenant_id": event.tenant, "source": event.source, "event_id": event.id,
                       "event_type": event.type, "flows": answer.flows,
                       "refused": len(answer.refused), "outcome": answer.outcome},
            )  # fmt: skip
            return answer
        raise WorkflowError(Code.BUSY, "the event kept being received concurrently: try again")

    async def _record(self, tx: Transaction, event: ReceivedEvent, stream: str,
                      key: Idempotency, request: str, caller: Caller) -> Answer:  # fmt: skip
        version = await tx.stream_version(stream) + 1
        rows = await tx.connection.fetch(
            Q.matching, event.tenant, event.type, event.source, MAX_RULES_PER_TYPE
        )
        pending = []
        rules, flows, refused = [], [], []
        for row in rows:
            rules.append(row["id"])
            flow_id = flow_id_for(stream, version, row["id"])
            try:
                events = self._flow_events(row, event, flow_id, caller)
            except (RenderRefused, WorkflowError) as refusal:
                refused.append(Refusal(rule=row["id"], reason=_reason(refusal)))
                continue
            pending.append(self.flows.flows._prepare(None, events, caller, None))
            flows.append(flow_id)
        received = CloudEventReceived(
            tenant_id=event.tenant, event_id=event.id, source=event.source,
            event_type=event.type, subject=event.subject, time=event.time,
            datacontenttype=event.datacontenttype, data=event.data,
            extensions=event.extensions, rules=rules, flows=flows, refused=refused,
        )  # fmt: skip
        claim = idempotency.claim(key, request, stream, version)
        also = AppendAlso.of(
            (Q.received, (stream, event.tenant, event.source, event.id, event.type,
                          event.subject, event.time, bool(rules), rules, flows, len(refused))),
            idempotency.claim_one(claim),
        )  # fmt: skip
        recorded = await tx.append(
            stream, [NewEvent(received.type, encode(received), caller.metadata())],
            version - 1, also=also,
        )  # fmt: skip
        if pending:
            # The repository's own batch (each flow's rows and work item with its append), so
            # that a flow an event starts is written as every other flow is.
            appends, statements = _batch(pending)
            for result in await append_batch(tx.connection, appends, statements):
                if isinstance(result, OrderConflict):
                    raise result  # transact() runs it again
                if not isinstance(result, list):
                    # Its id is this acceptance's own: only a flow made outside it could be
                    # there. Nothing of the event is kept.
                    raise WorkflowError(
                        Code.BUSY, f"a flow of this event exists already ({result}); try again"
                    )
        positioned = replace(event, position=recorded[0].position)
        completed: list[str] = []
        # Callback nodes waiting for this event complete in the transaction that records it.
        for hook in self.on_recorded:
            completed += await hook(tx, event.tenant, positioned)
        return Answer(event.id, event.source, bool(rules), flows, refused, False, completed)

    def _flow_events(self, row: asyncpg.Record, event: ReceivedEvent, flow_id: str,
                     caller: Caller) -> list[FlowEvent]:  # fmt: skip
        """The events that create and start the rule's flow (as the REST create with
        ``start`` does), or a refusal."""
        settings = _settings(row)
        biz_id, context = flow_of(settings, event)
        try:
            definition = self.flows.registry.get(settings.flowName, row["tenant_id"] or None)
        except DefinitionNotFound:
            raise RenderRefused(
                f"the definition {settings.flowName!r} is not known to this process"
            ) from None
        seeded: dict[str, Any] = {
            FlowContext.TRACE_ID: caller.trace_id or "",
            FlowContext.USER_ID: f"rule:{row['id']}",
            FlowContext.TENANT_ID: row["tenant_id"],
        }
        seeded.update(context)
        now = self.flows.flows.clock()
        command = CreateFlow(flow_id, biz_id, BIZ_TYPE, row["tenant_id"], seeded)
        events = decide(None, command, definition, now)
        events.append(FlowStarted())
        started: FlowState | None = None
        for each in events:
            started = evolve(started, each, now)
        assert started is not None
        return [*events, *no_reactor_needed(started, definition, now)]

    async def _replayed(self, stream: str, version: int) -> Answer:
        """The first answer, from the event recorded then."""
        recorded = await self.store.read_stream(stream, version, version)
        if not recorded:
            raise WorkflowError(Code.BUSY, "the event's first record is not readable yet")
        first = CloudEventReceived.model_validate(dict(recorded[0].data))
        return Answer(first.event_id, first.source, first.matched, list(first.flows),
                      list(first.refused), True)  # fmt: skip


def _settings(row: asyncpg.Record) -> RuleSettings:
    return RuleSettings(type=row["type"], source=row["source"], flowName=row["flow_name"],
                        bizId=row["biz_id"], context=dict(row["context"]),
                        description=row["description"])  # fmt: skip


def _reason(refusal: Exception) -> str:
    return refusal.message if isinstance(refusal, WorkflowError) else str(refusal)
