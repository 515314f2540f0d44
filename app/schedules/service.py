"""Operators' commands on schedules (create, update, pause, resume, delete) and their reads.

Each command loads the schedule's stream, decides, and appends with the expected version;
when the schedule moved meanwhile (a fire, another operator) it decides again on the fresh
state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flowlog.eventstore import EventStore, RecordedEvent, WrongExpectedVersion
from flowlog.schedules import decide
from flowlog.schedules.events import ScheduleEvent, schedule_stream
from flowlog.schedules.state import ScheduleState
from flowlog.schedules.store import Q, ScheduleRepository, fold_recorded
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.caller import SYSTEM, Caller
from flowlog.workflow.definition import Registry
from flowlog.workflow.errors import Code, DefinitionNotFound, WorkflowError
from flowlog.workflow.idempotency import KeyedRequest, KeyTaken, Recorded, fingerprint

log = logging.getLogger(__name__)

_ATTEMPTS = 20
Decision = Callable[[ScheduleState | None], list[ScheduleEvent]]


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule as its readers see it: its state, its next fire times, its history."""

    state: ScheduleState
    next_fires: list[datetime]
    events: list[RecordedEvent]


class ScheduleService:
    def __init__(
        self,
        store: EventStore,
        registry: Registry,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.schedules = ScheduleRepository(store)
        self.registry = registry
        self._on_change = on_change

    async def create(
        self,
        schedule_id: str,
        spec: ScheduleSpec,
        *,
        tenant_id: str = "",
        paused: bool = False,
        caller: Caller = SYSTEM,
        visible_to: str | None = None,
    ) -> ScheduleState:
        """A new schedule (or one made again under the id of a deleted one). Its definition
        must be recorded in the log (by any process) and be one ``visible_to`` may see (None:
        any); each fire uses its latest version then."""
        await self._known(spec.flowName, visible_to)

        def made(state: ScheduleState | None) -> list[ScheduleEvent]:
            # Another tenant's schedule of that id: "it exists", without saying whose.
            return decide.create(state, schedule_id, tenant_id, spec, paused, self._now())

        asked = ("create", tenant_id, spec.model_dump(mode="json"), paused)
        return await self._command(schedule_id, made, caller, None, asked)

    async def update(
        self, schedule_id: str, spec: ScheduleSpec, *, tenant: str | None = None,
        caller: Caller = SYSTEM,
    ) -> ScheduleState:  # fmt: skip
        await self._known(spec.flowName, tenant)
        return await self._command(
            schedule_id,
            lambda s: decide.update(s, schedule_id, spec, self._now()),
            caller,
            tenant,
            ("update", spec.model_dump(mode="json")),
        )

    async def pause(
        self, schedule_id: str, *, tenant: str | None = None, caller: Caller = SYSTEM
    ) -> ScheduleState:
        reason = caller.reason or ""
        return await self._command(
            schedule_id, lambda s: decide.pause(s, schedule_id, reason), caller, tenant,
            ("pause", reason),
        )  # fmt: skip

    async def resume(
        self, schedule_id: str, *, tenant: str | None = None, caller: Caller = SYSTEM
    ) -> ScheduleState:
        reason = caller.reason or ""
        return await self._command(
            schedule_id,
            lambda s: decide.resume(s, schedule_id, reason, self._now()),
            caller,
            tenant,
            ("resume", reason),
        )

    async def delete(
        self, schedule_id: str, *, tenant: str | None = None, caller: Caller = SYSTEM
    ) -> ScheduleState:
        reason = caller.reason or ""
        return await self._command(
            schedule_id, lambda s: decide.delete(s, schedule_id, reason), caller, tenant,
            ("delete", reason),
        )  # fmt: skip

    async def view(
        self, schedule_id: str, *, tenant: str | None = None, upcoming: int = 5, events: int = 50
    ) -> ScheduleView:
        """The schedule, its next fire times and its latest ``events`` events."""
        state, _ = await self.schedules.load(schedule_id)
        live = _visible(state, schedule_id, tenant)
        recent = await self.schedules.latest_events(schedule_id, live.version, events)
        return ScheduleView(live, decide.next_fires(live, upcoming), recent)

    async def rows(
        self, tenant: str | None, after: str = "", limit: int = 50
    ) -> tuple[list[asyncpg.Record], int]:
        """A page of schedules (by id, after ``after``) and how many there are."""
        return await self.schedules.rows(tenant, after, limit), await self.schedules.count(tenant)

    def _now(self) -> datetime:
        return self.schedules.clock()

    async def _known(self, name: str, tenant: str | None) -> None:
        """Refuses a definition that no process recorded, or that ``tenant`` may not see."""
        with contextlib.suppress(DefinitionNotFound):
            self.registry.get(name, tenant)
            return
        if not await self.schedules.pool.fetchval(Q.definition_known, name, tenant):
            raise DefinitionNotFound(name)

    async def _command(
        self,
        schedule_id: str,
        decision: Decision,
        caller: Caller,
        tenant: str | None,
        asked: tuple[Any, ...],
    ) -> ScheduleState:
        """Decides and appends, again while the schedule moves. With the caller's idempotency
        key, the request (``asked``, of this schedule) has one effect however often it is
        sent: its first answer (a refusal, or the schedule as that effect left it) again."""
        request = fingerprint("schedule", schedule_id, *asked)
        keyed = KeyedRequest(self.schedules.pool, caller.idempotency, request, self._replayed)
        if (first := await keyed.answered()) is not None:
            return first
        stream = schedule_stream(schedule_id)
        for _ in range(_ATTEMPTS):
            state, version = await self.schedules.load(schedule_id)
            try:
                if tenant is not None and state is not None:
                    _visible(state, schedule_id, tenant)
                events = decision(state)
            except WorkflowError as refusal:
                return await keyed.refused(refusal)
            if not events:
                assert state is not None
                return await keyed.unchanged(state, stream, version)
            claimed = keyed.claim(stream, version + len(events))
            try:
                after = await self.schedules.append(
                    state, schedule_id, events, caller, version, claimed
                )
            except WrongExpectedVersion:
                continue
            except KeyTaken:
                return await keyed.taken()
            if self._on_change is not None:
                self._on_change()
            log.info(
                "schedule changed",
                extra={"schedule_id": schedule_id, "events": [type(e).__name__ for e in events],
                       "trace_id": caller.trace_id},
            )  # fmt: skip
            return after
        raise WorkflowError(Code.BUSY, f"schedule {schedule_id} kept changing: try again")

    async def _replayed(self, first: Recorded) -> ScheduleState:
        """The answer of a key's first request: its refusal again, or the schedule as its
        effect left it (folded from the log up to that version)."""
        stream_id, version = first.effect()
        events = await self.schedules.store.read_stream(stream_id, 1, version)
        state = fold_recorded(events)
        if state is None:
            raise decide.not_found(stream_id.removeprefix(schedule_stream("")))
        return state


def _visible(state: ScheduleState | None, schedule_id: str, tenant: str | None) -> ScheduleState:
    """The schedule, if it exists for the caller (another tenant's does not)."""
    if state is None or state.status.deleted or (tenant is not None and state.tenant_id != tenant):
        raise decide.not_found(schedule_id)
    return state
