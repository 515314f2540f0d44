"""The scheduler: fires due schedules. One runs in every process that runs a reactor.

- a claim leases due rows of ``schedules`` (``FOR UPDATE SKIP LOCKED``): schedulers never take
  the same schedule at once, and a dead one's leases lapse (``lease_seconds``);
- a fire is decided from the schedule's stream and appended with its expected version, so two
  schedulers can never both record it, and the flow it starts has an id derived from the fire,
  so that one fire can never start two flows, whoever creates it and however often;
- the flow is made right after the fire is recorded; a scheduler killed in between leaves the
  row due soon (``SETTLE``), and whichever scheduler claims it then makes the flow;
- NOTIFY (any append) and local changes wake the loop; a timer covers the next due time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from flowlog.eventstore import (
    TRANSIENT_ERRORS,
    EventStore,
    Listener,
    WrongExpectedVersion,
    wake_or_poll,
)
from flowlog.faults import failpoint
from flowlog.schedules import decide
from flowlog.schedules.events import ScheduleEvent, ScheduleSkipped
from flowlog.schedules.flows import FireRefused
from flowlog.schedules.state import ScheduleState
from flowlog.schedules.store import Q, ScheduleRepository
from flowlog.times import Clock, utc_now
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import DefinitionNotFound, WorkflowError
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import TERMINAL

log = logging.getLogger(__name__)

_ATTEMPTS = 10
_SLACK = 1.0


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    lease_seconds: float = 10.0
    """How long a scheduler holds a schedule it fires; a dead one's wait this long."""
    batch: int = 32
    """Schedules claimed (and fired concurrently) at once."""
    poll_interval: float = 5.0
    """The longest the loop sleeps without a notification."""


class Scheduler:
    def __init__(
        self,
        store: EventStore,
        flows: WorkflowService,
        owner: str,
        *,
        listener: Listener | None = None,
        own: Collection[int] = (),
        settings: SchedulerSettings | None = None,
        clock: Clock = utc_now,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        """``observe(seconds)`` is told how late each fire's flow was made (after the fire's
        time and its jitter). ``own``: the server processes of this process's notifications,
        which do not wake it: its own schedules' changes poke it, and the flows this process
        appends (every create, every transition) cost it a claim and a look at the next due
        schedule each."""
        self._own = own
        self._observe = observe
        self.schedules = ScheduleRepository(store, clock)
        self.flows = flows
        self.owner = owner
        self.settings = settings or SchedulerSettings()
        self._listener = listener
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.fired = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    def poke(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        await wake_or_poll(
            self._fire_due, wake=self._wake, listener=self._listener,
            stopping=lambda: self._stopping, failed=_failed, skip=self._own.__contains__,
        )  # fmt: skip

    async def _fire_due(self) -> float:
        """Fires the due schedules it claims; the seconds to wait before the next claim."""
        claimed = await self.schedules.pool.fetch(
            Q.claim, self.owner, self.settings.batch, self.settings.lease_seconds,
            self._definitions(),
        )  # fmt: skip
        # Concurrently: a burst of fires at one instant (every schedule at midnight) shares
        # round trips, and their flows' appends one commit.
        await asyncio.gather(*(self._tick(row["id"]) for row in claimed))
        return 0.0 if claimed else await self._seconds_to_next_due()

    def _definitions(self) -> list[str]:
        """The definitions this process can make flows of: it claims only their schedules."""
        return [definition.name for definition in self.flows.registry.latest()]

    async def _seconds_to_next_due(self) -> float:
        seconds = await self.schedules.pool.fetchval(Q.next_due, self._definitions())
        if seconds is None:
            return self.settings.poll_interval
        return max(0.0, min(float(seconds), self.settings.poll_interval))

    async def _tick(self, schedule_id: str) -> None:
        """Fires what is due of one claimed schedule, makes its flow, and lets it go, due at
        its next fire. Whatever goes wrong (the database, a bug), the row is let go due again
        soon, never left without a due time: one schedule's trouble stops no other's."""
        state: ScheduleState | None = None
        due: datetime | None = self._clock() + decide.SETTLE
        try:
            state, version = await self.schedules.load(schedule_id)
            appended = False
            for _ in range(_ATTEMPTS):
                if state is None:
                    break
                # A fire recorded just before a pause or a delete still gets its flow.
                running = await self._last_flow(state)
                if running is None:
                    break  # its flow cannot be made now: due again at SETTLE
                if state.status.deleted:
                    due = None
                    break
                events = decide.fire(state, self._clock(), running)
                if not events:
                    if not appended and await self._early(state):
                        continue  # claimed just before its time (the clocks differ): fire it
                    due = decide.next_due(state, self._clock())
                    break
                try:
                    state = await self.schedules.append(
                        state, schedule_id, events, _caller(schedule_id), version
                    )
                except WrongExpectedVersion:  # an operator changed it: decide again
                    state, version = await self.schedules.load(schedule_id)
                    continue
                version += len(events)
                appended = True
                _log_refusals(schedule_id, events)
                # The fire's flow is made by the next round of the loop (_make_flow); a crash
                # right here leaves the row due at SETTLE, and another scheduler makes it.
                failpoint("schedule-fired")
        except TRANSIENT_ERRORS as exc:
            log.warning("scheduling a schedule failed; it is due again soon",
                        extra={"schedule_id": schedule_id, "error": repr(exc)})  # fmt: skip
        except Exception:  # a bug: logged whole, and this schedule only waits
            log.exception("scheduling a schedule failed", extra={"schedule_id": schedule_id})
        finally:
            # Due no sooner, by the database's clock, than this process's clock says: a row
            # claimed early by a database clock ahead of ours must not be claimable again at
            # once (the loop would spin until the clocks agree).
            wait = 0.0 if due is None else max(0.0, (due - self._clock()).total_seconds())
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self.schedules.pool.execute(
                    Q.release, schedule_id, self.owner, due,
                    None if state is None else state.version, wait,
                )  # fmt: skip

    async def _early(self, state: ScheduleState) -> bool:
        """Waits for a fire due within ``_SLACK`` by this process's clock; True if it did.
        Due times are written by the clock of whichever process appended, and rows claimed by
        the database's: released unfired, a row claimed early is at once claimable again, and
        the loop would spin until the clocks agree."""
        due = decide.next_due(state, self._clock())
        if due is None:
            return False
        early = (due - self._clock()).total_seconds()
        if not 0 < early <= _SLACK:
            return False
        await asyncio.sleep(early)
        return True

    async def _last_flow(self, state: ScheduleState) -> bool | None:
        """Whether the flow of the schedule's last fire still runs, after making it if it does
        not exist yet (the fire was recorded by a scheduler that could not make it); None when
        it cannot be made now. One read of its status, which overlap needs anyway."""
        flow_id, fire_time = state.last_flow_id, state.last_fire_at
        if flow_id is None or fire_time is None:
            return False
        status = await self.schedules.pool.fetchval(Q.flow_status, flow_id)
        if status is not None:
            return status not in TERMINAL
        try:
            biz_id, context = decide.flow_of_fire(state, fire_time)
        except FireRefused as refusal:
            # Recorded fired before fires were checked: its flow will never be, nor run.
            log.warning("a schedule's flow is refused; it is never made",
                        extra={"schedule_id": state.schedule_id, "flow_id": flow_id,
                               "error": str(refusal)})  # fmt: skip
            return False
        try:
            await self.flows.create(
                biz_id, state.spec.bizType, state.spec.flowName, context=context,
                caller=_caller(state.schedule_id, f"fire of {fire_time.isoformat()}"),
                tenant_id=state.tenant_id, user_id=f"schedule:{state.schedule_id}",
                start=True, flow_id=flow_id, priority=state.spec.priority,
            )  # fmt: skip
        except WrongExpectedVersion:
            return True  # made meanwhile by another scheduler: it has just started
        except (DefinitionNotFound, WorkflowError) as exc:
            log.warning(
                "a schedule's flow cannot be made",
                extra={"schedule_id": state.schedule_id, "flow_id": flow_id, "error": str(exc)},
            )
            return None
        late = (self._clock() - fire_time).total_seconds()
        late -= decide.jitter_of(state, fire_time).total_seconds()
        if self._observe is not None:
            self._observe(max(0.0, late))
        self.fired += 1
        log.info(
            "schedule fired",
            extra={"schedule_id": state.schedule_id, "flow_id": flow_id,
                   "fire_time": fire_time.isoformat(), "late_s": round(late, 3)},
        )  # fmt: skip
        return True  # made and started just now


def _log_refusals(schedule_id: str, events: list[ScheduleEvent]) -> None:
    for event in events:
        if isinstance(event, ScheduleSkipped) and event.why == "refused":
            log.warning("a schedule's fire is refused: the REST create would refuse its flow",
                        extra={"schedule_id": schedule_id, "fire_time": event.first.isoformat(),
                               "error": event.error})  # fmt: skip


def _failed(exc: BaseException, wait: float) -> None:
    log.warning("scheduling failed", extra={"error": repr(exc), "retry_in": wait})


def _caller(schedule_id: str, reason: str | None = None) -> Caller:
    return Caller(actor=f"schedule:{schedule_id}", reason=reason)
