"""Webhook subscriptions in the log: each a stream (``webhook-<id>``) whose row in ``webhooks``
is written by the append's own statement, the create's also registering the subscription's
cursor. Commands read the stream, decide (app/webhooks/state.py) and append with the version
read; each change is announced on ``flowlog_webhooks`` after it committed."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flowlog.eventstore import AppendAlso, EventStore, Expect, NewEvent, WrongExpectedVersion
from flowlog.sql import load_queries
from flowlog.webhooks import state as decide
from flowlog.webhooks.events import (
    Settings,
    WebhookCreated,
    WebhookEvent,
    cursor_name,
    encode,
    webhook_stream,
)
from flowlog.webhooks.signing import secret_message
from flowlog.webhooks.state import WebhookNotFound, WebhookState, fold, visible
from flowlog.workflow.callbacks import CallbackTokens
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError
from flowlog.workflow.idempotency import (
    KeyedRequest,
    KeyTaken,
    Recorded,
    claim_one,
    fingerprint,
    key_taken,
)

log = logging.getLogger(__name__)

_ATTEMPTS = 20
LAG_CAP = 10_000
"""Events behind a cursor (and pending deliveries) are counted up to this."""
MAX_PER_TENANT = 100
"""Subscriptions a tenant may keep (not deleted): each is a cursor that every delivering
process reads the log for."""


@dataclass(frozen=True, slots=True)
class WebhookQueries:
    upsert: str
    register_cursor: str
    register_all: str
    notify: str
    webhook: str
    listed: str
    delivery: str
    dead_letters: str
    restore: str
    rows: str
    kept_of_tenant: str


Q = load_queries(WebhookQueries, "webhooks")

Decision = Callable[[WebhookState], list[WebhookEvent]]


def row_state(row: asyncpg.Record) -> WebhookState:
    """A ``listed`` row as the state its stream folds to."""
    settings = Settings(
        url=row["url"], events=tuple(row["events"]),
        definitions=None if row["definitions"] is None else tuple(row["definitions"]),
        statuses=None if row["statuses"] is None else tuple(row["statuses"]),
        description=row["description"],
    )  # fmt: skip
    return WebhookState(
        row["id"], row["tenant_id"], settings, row["state"], row["secret_version"],
        row["created_at"], row["created_by"], row["updated_at"], row["updated_by"],
        row["stream_version"],
    )  # fmt: skip


class WebhookStore:
    def __init__(self, store: EventStore, tokens: CallbackTokens | None = None) -> None:
        self.store = store
        self.tokens = tokens or CallbackTokens(store.pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    async def secret(self, state: WebhookState) -> bytes:
        """The subscription's current secret (derived, never stored)."""
        return await self.tokens.mac(secret_message(state.webhook_id, state.secret_version))

    async def load(self, webhook_id: str) -> WebhookState | None:
        return fold(await self.store.read_stream(webhook_stream(webhook_id)))

    async def get(self, webhook_id: str, tenant: str | None) -> WebhookState:
        """The subscription, if ``tenant`` (None: any) may see it; else WebhookNotFound."""
        return visible(await self.load(webhook_id), webhook_id, tenant)

    async def listed(
        self, tenant: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[WebhookState]:
        at, webhook_id = after if after is not None else (None, None)
        rows = await self.pool.fetch(Q.listed, tenant, at, webhook_id, limit)
        return [row_state(row) for row in rows]

    async def create(
        self, webhook_id: str, tenant: str, settings: Settings, caller: Caller
    ) -> WebhookState:
        """A new subscription of ``tenant``. With the caller's Idempotency-Key, the same
        request again answers the subscription the first one made (another request with that
        key: KeyReused)."""
        request = fingerprint("webhook-create", tenant, settings.model_dump(mode="json"))
        keyed = KeyedRequest(self.pool, caller.idempotency, request, self._replayed)
        if (first := await keyed.answered()) is not None:
            return first
        if await self.pool.fetchval(Q.kept_of_tenant, tenant) >= MAX_PER_TENANT:
            raise WorkflowError(
                Code.BAD_INPUT,
                f"the tenant has {MAX_PER_TENANT} webhook subscriptions already: delete one "
                "first (each is a cursor every delivering process follows)",
            )
        event = WebhookCreated(webhook_id=webhook_id, tenant_id=tenant, **settings.model_dump())
        stream = webhook_stream(webhook_id)
        try:
            after = await self._append(None, webhook_id, [event], caller, 0,
                                       keyed.claim(stream, 1))  # fmt: skip
        except KeyTaken:
            return await keyed.taken()
        return after

    async def update(
        self, webhook_id: str, changes: Mapping[str, Any], *, tenant: str | None,
        caller: Caller,
    ) -> WebhookState:  # fmt: skip
        """Changes the settings named in ``changes`` (the others stay as they are then)."""
        return await self._command(
            webhook_id, lambda s: decide.update(s, changes), caller, tenant,
            ("update", dict(changes)),
        )  # fmt: skip

    async def pause(self, webhook_id: str, *, tenant: str | None, caller: Caller) -> WebhookState:
        return await self._command(webhook_id, decide.pause, caller, tenant, ("pause",))

    async def resume(self, webhook_id: str, *, tenant: str | None, caller: Caller) -> WebhookState:
        return await self._command(webhook_id, decide.resume, caller, tenant, ("resume",))

    async def delete(self, webhook_id: str, *, tenant: str | None, caller: Caller) -> WebhookState:
        return await self._command(webhook_id, decide.delete, caller, tenant, ("delete",))

    async def rotate(self, webhook_id: str, *, tenant: str | None, caller: Caller) -> WebhookState:
        return await self._command(webhook_id, decide.rotate, caller, tenant, ("rotate",))

    async def _command(
        self, webhook_id: str, decision: Decision, caller: Caller, tenant: str | None,
        asked: tuple[object, ...],
    ) -> WebhookState:  # fmt: skip
        """Decides and appends, again while the subscription moves. With the caller's
        idempotency key, one effect however often the request is sent: its first answer (a
        refusal, or the subscription as that effect left it) again."""
        request = fingerprint("webhook", webhook_id, caller.reason or "", *asked)
        keyed = KeyedRequest(self.pool, caller.idempotency, request, self._replayed)
        if (first := await keyed.answered()) is not None:
            return first
        stream = webhook_stream(webhook_id)
        for _ in range(_ATTEMPTS):
            found = await self.load(webhook_id)
            try:
                current = visible(found, webhook_id, tenant)
                events = decision(current)
            except WorkflowError as refusal:
                return await keyed.refused(refusal)
            if not events:
                return await keyed.unchanged(current, stream, current.version)
            claimed = keyed.claim(stream, current.version + len(events))
            try:
                return await self._append(current, webhook_id, events, caller,
                                          current.version, claimed)  # fmt: skip
            except WrongExpectedVersion:
                continue
            except KeyTaken:
                return await keyed.taken()
        raise WorkflowError(Code.BUSY, f"webhook {webhook_id} kept changing: try again")

    async def _append(
        self, state: WebhookState | None, webhook_id: str, events: Sequence[WebhookEvent],
        caller: Caller, version: int, key: tuple[object, ...] | None,
    ) -> WebhookState:  # fmt: skip
        meta = caller.metadata()
        new = [NewEvent(e.type, encode(e), meta) for e in events]  # type: ignore[attr-defined]
        # The row is the fold's: folded here at a placeholder time, then written with the
        # append's own time (the statement's), which the answer takes from the recorded events.
        placeholder = datetime.min
        after = state
        for offset, event in enumerate(events, 1):
            after = decide.evolve(after, event, version + offset, placeholder, caller.actor)
        assert after is not None
        s = after.settings
        upsert = (
            webhook_id, after.tenant_id, s.url, list(s.events),
            None if s.definitions is None else list(s.definitions),
            None if s.statuses is None else list(s.statuses), s.description, after.state,
            after.secret_version, caller.actor,
        )  # fmt: skip
        statements: list[tuple[str, tuple[Any, ...]]] = [(Q.upsert, upsert)]
        if state is None:
            statements.append((Q.register_cursor, (cursor_name(webhook_id),)))
        if key is not None:
            statements.append(claim_one(key))
        try:
            recorded = await self.store.append(
                webhook_stream(webhook_id), new, version or Expect.NO_STREAM,
                also=AppendAlso.of(*statements),
            )  # fmt: skip
        except asyncpg.UniqueViolationError as exc:
            if key_taken(exc):
                raise KeyTaken() from exc
            raise
        await self.pool.execute(Q.notify, webhook_id)
        log.info(
            "webhook changed",
            extra={"webhook_id": webhook_id, "events": [e.type for e in events],  # type: ignore[attr-defined]
                   "actor": caller.actor, "trace_id": caller.trace_id},
        )  # fmt: skip
        at = recorded[-1].recorded_at
        created_at = at if state is None else state.created_at
        return _timed(after, created_at, at)

    async def _replayed(self, first: Recorded) -> WebhookState:
        """The answer of a key's first request: its refusal again, or the subscription as
        its effect left it (folded from the log up to that version)."""
        stream_id, version = first.effect()
        state = fold(await self.store.read_stream(stream_id, 1, version))
        if state is None:
            raise WebhookNotFound(stream_id.removeprefix(webhook_stream("")))
        return state

    async def delivery(self, webhook_id: str, cap: int = LAG_CAP) -> asyncpg.Record:
        """How its delivery is doing (the ``delivery`` query), counting up to ``cap``."""
        row = await self.pool.fetchrow(Q.delivery, webhook_id, cursor_name(webhook_id), cap)
        assert row is not None
        return row

    async def dead_letters(self, webhook_id: str, limit: int) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(Q.dead_letters, webhook_id, limit))


def _timed(state: WebhookState, created_at: datetime, at: datetime) -> WebhookState:
    return dataclasses.replace(state, created_at=created_at, updated_at=at)
