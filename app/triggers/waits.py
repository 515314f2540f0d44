"""CloudEvents that complete the callback nodes waiting for them (docs/workflows.md, "Callback
nodes that wait for an event").

``EventWaits(registry, flows).complete_waits(tx, tenant, event)`` is called by the ingestion
of an event, in the transaction that records it (it needs the process's definitions to
decide): it finds the tenant's waits for the event's type whose match the event's data
contains (``event_waits``), and completes each node as its token would (``CallbackReceived`` +
``NodeSucceeded``, decided by the same decision with the flow's definition), appended in that
transaction. Each node completes once: a node that waits no more (completed by a token or
another event, canceled, past its deadline) is left alone, and a flow that moved meanwhile is
decided again on its fresh state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import orjson
from pydantic import JsonValue

from flowlog.eventstore import OrderConflict, Transaction, WrongExpectedVersion
from flowlog.sql import load_queries
from flowlog.storable import storable_text, unstorable
from flowlog.times import Clock, utc_now
from flowlog.workflow.caller import Caller
from flowlog.workflow.commands import CompleteCallback
from flowlog.workflow.decide import decide
from flowlog.workflow.definition import Registry
from flowlog.workflow.errors import WorkflowError
from flowlog.workflow.events import FlowEvent
from flowlog.workflow.state import FlowState
from flowlog.workflow.store import FlowRepository
from flowlog.workflow.streams import flow_stream, fold_recorded

log = logging.getLogger(__name__)

PAGE: Final = 200
"""Waits completed per statement (one batch append); an event completes any number."""
ROUNDS: Final = 5
"""Times a flow that moved under the completion is decided again before it is left alone."""
MAX_RESULT: Final = 100_000
"""Characters of the node's result text, as a callback's (the event's data is left out of a
result that would be longer)."""
ACTOR: Final = "event"


class EventLike(Protocol):
    """What a CloudEvent needs to complete a wait (app/triggers/cloudevent.py's
    ``ReceivedEvent`` is one)."""

    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def time(self) -> datetime | None: ...
    @property
    def data(self) -> JsonValue: ...


@dataclass(frozen=True, slots=True)
class WaitQueries:
    waits_matching: str
    waits_lock: str
    waits_candidates: str
    waits_clear: str
    waits_rows: str


Q = load_queries(WaitQueries, "waits")


def event_result(event: EventLike) -> str:
    """The node's result: the event's envelope and its data, as JSON text (a line)."""
    envelope = {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "time": None if event.time is None else event.time.isoformat(),
    }
    try:
        text = orjson.dumps({"event": envelope, "data": event.data}).decode()
    except (orjson.JSONEncodeError, TypeError):
        text = ""
    if not text or len(text) > MAX_RESULT:
        text = orjson.dumps({"event": envelope, "dataOmitted": True}).decode()
    return text + "\n"


class EventWaits:
    """Completes waiting callback nodes by events; decides with the process's definitions."""

    def __init__(self, registry: Registry, flows: FlowRepository, clock: Clock = utc_now) -> None:
        self._registry = registry
        self._flows = flows
        self._clock = clock

    async def complete_waits(
        self, tx: Transaction, tenant: str, event: EventLike, caller: Caller | None = None
    ) -> list[str]:
        """Completes every node of ``tenant`` that waits for ``event`` (in ``tx``: the nodes
        complete if and when it commits); returns their flows' ids (a flow waits on one node at
        a time). ``caller``: whose event it is, for the log's metadata (default: actor
        ``event``). The ingestion's hook (app/triggers/ingest.py, ``OnRecorded``) is this
        bound method.

        Raises OrderConflict when a flow's head was written by a younger transaction: run the
        transaction again (``EventStore.transact`` does)."""
        if unstorable(event.data) is not None or not storable_text(event.type):
            # The ingestion refuses such events at its edge; here they match nothing rather
            # than fail the transaction that records them.
            log.warning("event matches no wait: it cannot be stored",
                        extra={"event_id": event.id[:200], "tenant": tenant})  # fmt: skip
            return []
        who = caller or Caller(actor=ACTOR)
        who = Caller(actor=who.actor, trace_id=who.trace_id, request_id=who.request_id,
                     reason=f"event {event.id} from {event.source}"[:1000])  # fmt: skip
        result = event_result(event)
        completed: list[str] = []
        after = ""
        while True:
            rows = await tx.connection.fetch(
                Q.waits_matching, tenant, event.type, event.data, PAGE, after
            )
            if not rows:
                return completed
            after = rows[-1]["node_id"]
            waiting = [(row["flow_id"], row["node_id"]) for row in rows]
            completed += await self._complete(tx, tenant, waiting, who, result)
            if len(rows) < PAGE:
                return completed

    async def _complete(
        self,
        tx: Transaction,
        tenant: str,
        waiting: Sequence[tuple[str, str]],
        caller: Caller,
        result: str,
    ) -> list[str]:
        done: list[str] = []
        todo = list(waiting)
        for _ in range(ROUNDS):
            changes: list[tuple[FlowState, list[FlowEvent]]] = []
            nodes: list[str] = []
            for flow_id, node_id in todo:
                decided = await self._decided(tx, tenant, flow_id, node_id, caller, result)
                if decided is not None:
                    changes.append(decided)
                    nodes.append(node_id)
            answers = await self._flows.append_in(tx, changes, caller)
            todo = []
            for (state, _), node_id, answer in zip(changes, nodes, answers, strict=True):
                if isinstance(answer, OrderConflict):
                    raise answer
                if isinstance(answer, WrongExpectedVersion):
                    todo.append((state.flow_id, node_id))  # moved meanwhile: decide again
                    continue
                done.append(state.flow_id)
                log.info(
                    "event completed a waiting node",
                    extra={"flow_id": state.flow_id, "node_id": node_id, "tenant": tenant,
                           "status": answer.status.value},
                )  # fmt: skip
            if not todo:
                return done
        log.warning(
            "event left waiting nodes: their flows kept changing",
            extra={"node_ids": [node_id for _, node_id in todo], "tenant": tenant},
        )
        return done

    async def _decided(
        self,
        tx: Transaction,
        tenant: str,
        flow_id: str,
        node_id: str,
        caller: Caller,
        result: str,
    ) -> tuple[FlowState, list[FlowEvent]] | None:
        """The flow and the completion's events, or None when the node waits no more."""
        state = fold_recorded(await tx.read_stream(flow_stream(flow_id)))
        if state is None or state.tenant_id != tenant:
            return None  # gone (archived), or a row that is not the tenant's
        definition = self._registry.by_version(state.definition_version)
        if definition is None:
            log.warning(
                "event not delivered to a waiting node: its definition's version is not "
                "known to this process",
                extra={"flow_id": flow_id, "node_id": node_id,
                       "version": state.definition_version},
            )  # fmt: skip
            return None
        running = state.running_node
        if running is None or running.node_id != node_id or running.event is None:
            return None
        command = CompleteCallback(node_id, True, by=caller.actor, reason=caller.reason or "",
                                   result=result)  # fmt: skip
        try:
            events = decide(state, command, definition, self._clock())
        except WorkflowError:
            return None  # completed, canceled or past its deadline: it waits no more
        return state, events
