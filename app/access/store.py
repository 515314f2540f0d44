"""Keys and refusals in the log: each key a stream (``key-<id>``) whose row in ``api_keys`` is
written by the append's own statement; refusals appended to their actor's stream."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from flowlog.access import keys
from flowlog.access.events import (
    AccessEvent,
    AccessRefused,
    KeyCreated,
    KeyRevoked,
    LoginRefused,
    encode,
    key_stream,
    refusals_stream,
)
from flowlog.access.identity import Identity
from flowlog.access.keys import KeyRecord
from flowlog.access.roles import Role
from flowlog.eventstore import AppendAlso, EventStore, Expect, NewEvent, WrongExpectedVersion
from flowlog.sql import load_queries
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccessQueries:
    key_created: str
    key_revoked: str
    keys: str
    key: str
    key_by_digest: str
    listed: str
    used: str
    notify: str
    restore: str
    secret: str
    key_rows: str


Q = load_queries(AccessQueries, "access")

_NAME_TAKEN = "api_keys_name_key"


def record_of(row: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        key_id=row["id"], tenant=row["tenant_id"], name=row["name"], role=Role(row["role"]),
        prefix=row["prefix"], digest=row["digest"], created_at=row["created_at"],
        created_by=row["created_by"], expires_at=row["expires_at"], revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"], revoke_reason=row["revoke_reason"],
        last_used_at=row["last_used_at"],
    )  # fmt: skip


def _event(event: AccessEvent, caller: Caller) -> NewEvent:
    return NewEvent(event.type, encode(event), caller.metadata())  # type: ignore[attr-defined]


class KeyNotFound(WorkflowError):
    def __init__(self, key_id: str) -> None:
        super().__init__(Code.KEY_NOT_FOUND, f"no key {key_id!r} here")


class KeyStore:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    async def create(
        self, *, key_id: str, secret: str, tenant: str, name: str, role: Role,
        expires_at: datetime | None, caller: Caller,
    ) -> KeyRecord:  # fmt: skip
        """Makes the key whose secret is ``secret`` (only its digest is kept). A create sent
        again (the same id: keys made from an Idempotency-Key) answers the key it made."""
        event = KeyCreated(
            key_id=key_id, tenant_id=tenant, name=name, role=role.value,
            prefix=keys.shown(secret), digest=keys.digest(secret), expires_at=expires_at,
        )  # fmt: skip
        also = AppendAlso.of(
            (Q.key_created, (key_id, tenant, name, role.value, event.prefix, event.digest,
                             caller.actor, expires_at)),
        )  # fmt: skip
        try:
            await self.store.append(
                key_stream(key_id), [_event(event, caller)], Expect.NO_STREAM, also=also
            )
        except WrongExpectedVersion:
            pass  # made before, by the same request: answered below as it is now
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == _NAME_TAKEN:
                raise WorkflowError(
                    Code.KEY_NAME_TAKEN, f"the tenant has a key named {name!r} already"
                ) from None
            raise
        else:
            await self.changed(key_id)
        found = await self.get(key_id)
        if found is None or found.tenant != tenant:
            raise KeyNotFound(key_id)
        return found

    async def revoke(
        self, key_id: str, *, tenant: str | None, caller: Caller, reason: str
    ) -> KeyRecord:
        """Revokes the key (of ``tenant``; None: any); revoking a revoked key changes nothing
        and answers it as it is."""
        for _ in range(3):
            row = await self.pool.fetchrow(Q.key, key_id)
            if row is None or (tenant is not None and row["tenant_id"] != tenant):
                raise KeyNotFound(key_id)
            if row["revoked_at"] is not None:
                return record_of(row)
            event = KeyRevoked(key_id=key_id, reason=reason)
            also = AppendAlso.of((Q.key_revoked, (key_id, caller.actor, reason)))
            try:
                await self.store.append(
                    key_stream(key_id), [_event(event, caller)], row["stream_version"], also=also
                )
            except WrongExpectedVersion:
                continue  # revoked meanwhile: look again
            await self.changed(key_id)
            break
        found = await self.get(key_id)
        assert found is not None
        return found

    async def get(self, key_id: str) -> KeyRecord | None:
        row = await self.pool.fetchrow(Q.key, key_id)
        return None if row is None else record_of(row)

    async def by_digest(self, digest: str) -> KeyRecord | None:
        row = await self.pool.fetchrow(Q.key_by_digest, digest)
        return None if row is None else record_of(row)

    async def all(self) -> list[KeyRecord]:
        return [record_of(row) for row in await self.pool.fetch(Q.keys)]

    async def listed(
        self, tenant: str | None, after: tuple[datetime, str] | None, limit: int,
        status: str | None = None,
    ) -> list[KeyRecord]:  # fmt: skip
        """Keys of ``tenant`` (None: every tenant), newest first, after ``after`` (a listed
        key's creation time and id), of ``status`` (None: any)."""
        at, key_id = after if after is not None else (None, None)
        rows = await self.pool.fetch(Q.listed, tenant, at, key_id, limit, status)
        return [record_of(row) for row in rows]

    async def changed(self, key_id: str) -> None:
        """Tells every process to reload its keys (after the change committed: a process that
        reloads at once must see it)."""
        await self.pool.execute(Q.notify, key_id)

    async def used(self, uses: Mapping[str, datetime]) -> None:
        if uses:
            await self.pool.execute(Q.used, list(uses), list(uses.values()))

    async def refused(
        self, identity: Identity, *, method: str, route: str, needed: Role, caller: Caller,
        repeats: int = 0,
    ) -> None:  # fmt: skip
        """Records that ``identity`` was refused ``method route`` for want of ``needed`` (and
        ``repeats`` times more since the last such record)."""
        event = AccessRefused(
            tenant_id=identity.tenant, method=method, route=route, needed=needed.value,
            role=identity.role.value, repeats=repeats,
        )  # fmt: skip
        await self.store.append(
            refusals_stream(identity.tenant, identity.actor), [_event(event, caller)], Expect.ANY
        )

    async def login_refused(self, *, method: str, address: str, reason: str, caller: Caller,
                            repeats: int = 0) -> None:  # fmt: skip
        event = LoginRefused(method=method, address=address, reason=reason, repeats=repeats)
        await self.store.append(
            refusals_stream("", f"login:{address}"), [_event(event, caller)], Expect.ANY
        )
