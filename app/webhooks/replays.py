"""What operators do to a subscription's deliveries: list them, send dead letters again, and
replay the log from a position or a time (the cursor moves back, the fan-out enqueues
again). Resends and replays are events of the stream ``webhook-replays-<id>``, with the
effect in the same transaction and the caller's idempotency key in the append's statement,
so a request sent twice acts once and answers the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import asyncpg
from pydantic import BaseModel, ConfigDict

from flowlog.eventstore import (
    AppendAlso,
    EventStore,
    NewEvent,
    Transaction,
    WrongExpectedVersion,
)
from flowlog.webhooks.fanout import cursor_name
from flowlog.webhooks.queries import Q
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.idempotency import (
    Idempotency,
    KeyedRequest,
    Recorded,
    claim_one,
    fingerprint,
    key_taken,
)

MAX_POSITIONS = 1000
T = TypeVar("T")


def replays_stream(webhook_id: str) -> str:
    return f"webhook-replays-{webhook_id}"


class DeliveriesResent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["DeliveriesResent"] = "DeliveriesResent"
    positions: list[int]
    """The dead letters made pending again."""


class ReplayRequested(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["ReplayRequested"] = "ReplayRequested"
    from_position: int | None = None
    from_time: datetime | None = None
    start_position: int | None
    """The first event read again (None: none yet, the cursor is already before it)."""
    cursor: str
    """Where the cursor is after the replay (``transaction_id/position``)."""


@dataclass(frozen=True, slots=True)
class Resent:
    positions: list[int]


@dataclass(frozen=True, slots=True)
class Replayed:
    start_position: int | None
    cursor: str


def _not_found() -> WorkflowError:
    return WorkflowError(Code.WEBHOOK_NOT_FOUND, "no such webhook here")


class DeliveryOperations:
    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def check(self, webhook_id: str, tenant: str | None) -> None:
        """WEBHOOK_NOT_FOUND unless the subscription exists, is not deleted, and is the
        tenant's (``tenant`` None: any)."""
        if (
            len(webhook_id) > 64
            or await self._store.pool.fetchrow(Q.webhook_of, webhook_id, tenant) is None
        ):
            raise _not_found()

    async def listed(
        self, webhook_id: str, tenant: str | None, state: str, after: int, limit: int
    ) -> list[asyncpg.Record]:
        await self.check(webhook_id, tenant)
        return list(await self._store.pool.fetch(Q.deliveries, webhook_id, state, after, limit))

    async def resend(
        self,
        webhook_id: str,
        tenant: str | None,
        positions: Sequence[int] | None,
        caller: Caller,
        key: Idempotency | None,
    ) -> Resent:
        await self.check(webhook_id, tenant)
        wanted = None if positions is None else sorted(set(positions))
        request = fingerprint("webhook-resend", webhook_id, wanted)
        keyed = KeyedRequest(self._store.pool, key, request, self._resent)

        async def work(tx: Transaction) -> Resent:
            rows = await tx.connection.fetch(Q.resend, webhook_id, wanted)
            back = [row["position"] for row in rows]
            if wanted is not None and len(back) != len(wanted):
                missing = sorted(set(wanted) - set(back))[:10]
                raise WorkflowError(Code.DELIVERY_NOT_FOUND,
                                    f"no dead letter at position(s) {missing}: nothing was "
                                    "re-sent")  # fmt: skip
            await self._record(tx, webhook_id, DeliveriesResent(positions=back), caller, keyed)
            return Resent(back)

        return await self._act(keyed, work)

    async def replay(
        self,
        webhook_id: str,
        tenant: str | None,
        from_position: int | None,
        from_time: datetime | None,
        caller: Caller,
        key: Idempotency | None,
    ) -> Replayed:
        await self.check(webhook_id, tenant)
        if (from_position is None) == (from_time is None):
            raise WorkflowError(Code.BAD_REPLAY_START,
                                "give exactly one of fromPosition and fromTime")  # fmt: skip
        if from_time is not None and from_time > datetime.now(UTC):
            raise WorkflowError(Code.BAD_REPLAY_START, "fromTime: a time to come has no events")
        request = fingerprint("webhook-replay", webhook_id, from_position,
                              None if from_time is None
                              else from_time.astimezone(UTC).isoformat())  # fmt: skip
        keyed = KeyedRequest(self._store.pool, key, request, self._replayed)

        async def work(tx: Transaction) -> Replayed:
            conn = tx.connection
            if from_position is not None:
                start = await conn.fetchrow(Q.event_at, from_position)
            else:
                start = await conn.fetchrow(Q.event_since, from_time)
            if start is None:
                raise WorkflowError(Code.BAD_REPLAY_START,
                                    "no event of the log is at or after that start")  # fmt: skip
            horizon = await tx.removal_horizon()
            checkpoint = (start["transaction_id"], start["position"] - 1)
            if horizon is not None and checkpoint < tuple(horizon):
                raise WorkflowError(Code.BAD_REPLAY_START,
                                    f"events before {horizon} were archived away: replay from "
                                    "a later start")  # fmt: skip
            # The cursor's batch in progress ends first; it cannot advance over the rewind.
            await conn.execute(Q.lock_cursor, cursor_name(webhook_id))
            moved = await conn.fetchrow(Q.rewind, cursor_name(webhook_id), *checkpoint)
            if moved is None:
                raise _not_found()  # no cursor: not a subscription that delivers
            cursor = f"{moved['transaction_id']}/{moved['position']}"
            rewound = (moved["transaction_id"], moved["position"]) == checkpoint
            event = ReplayRequested(
                from_position=from_position, from_time=from_time,
                start_position=start["position"] if rewound else None, cursor=cursor,
            )  # fmt: skip
            await self._record(tx, webhook_id, event, caller, keyed)
            return Replayed(event.start_position, cursor)

        replayed = await self._act(keyed, work)
        await self._store.pool.execute(Q.changed, webhook_id)
        return replayed

    async def _record(
        self,
        tx: Transaction,
        webhook_id: str,
        event: DeliveriesResent | ReplayRequested,
        caller: Caller,
        keyed: KeyedRequest[Any],
    ) -> None:
        stream = replays_stream(webhook_id)
        version = await tx.stream_version(stream)
        data = event.model_dump(mode="json", exclude={"type"})
        claim = keyed.claim(stream, version + 1)
        also = AppendAlso.of(claim_one(claim)) if claim is not None else None
        await tx.append(stream, [NewEvent(event.type, data, caller.metadata())], version,
                        also=also)  # fmt: skip

    async def _act(self, keyed: KeyedRequest[T], work: Callable[[Transaction], Awaitable[T]]) -> T:
        answered = await keyed.answered()
        if answered is not None:
            return answered
        for _ in range(10):
            try:
                return await self._store.transact(work)
            except WrongExpectedVersion:
                continue  # another resend or replay of the subscription came first: again
            except asyncpg.UniqueViolationError as exc:
                if key_taken(exc):
                    return await keyed.taken()
                raise
            except WorkflowError as refusal:
                return await keyed.refused(refusal)
        raise WorkflowError(Code.UNAVAILABLE, "too many concurrent changes: try again")

    async def _event(self, recorded: Recorded) -> dict[str, Any]:
        stream_id, version = recorded.effect()
        data = await self._store.pool.fetchval(Q.replay_event, stream_id, version)
        return dict(data)

    async def _resent(self, recorded: Recorded) -> Resent:
        return Resent(list((await self._event(recorded))["positions"]))

    async def _replayed(self, recorded: Recorded) -> Replayed:
        data = await self._event(recorded)
        return Replayed(data["start_position"], data["cursor"])
