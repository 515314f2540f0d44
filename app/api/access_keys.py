"""The keys' routes: make a key (answered once), list them, revoke one. An admin manages its
own tenant's keys; a superadmin any tenant's (docs/access.md)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from aiohttp import web

from flowlog.access import keys as api_keys
from flowlog.access.identity import Identity
from flowlog.access.keys import KeyRecord
from flowlog.access.roles import Role
from flowlog.api import keys
from flowlog.api.authorize import authorize
from flowlog.api.common import tenant_of
from flowlog.api.context import context_of
from flowlog.api.operations import Api, Paged
from flowlog.wire.envelope import Page
from flowlog.wire.keys import CreatedKey, KeyCreate, KeyInfo, KeyList, KeyListQuery, KeyRevoke
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code, WorkflowError

api = Api()
PATH = "/api/v1/keys"
KEYS = ("keys",)


def _identity(request: web.Request) -> Identity:
    identity = context_of(request).identity
    assert identity is not None  # the route's role let it through
    return identity


def _caller(request: web.Request, reason: str | None = None) -> Caller:
    ctx = context_of(request)
    return Caller(actor=ctx.actor, trace_id=ctx.trace_id, request_id=ctx.request_id,
                  reason=reason or None)  # fmt: skip


def info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(
        id=record.key_id, name=record.name, tenant=record.tenant, role=record.role.value,
        prefix=record.prefix, status=record.status(datetime.now(UTC)),
        createdAt=record.created_at, createdBy=record.created_by, expiresAt=record.expires_at,
        lastUsedAt=record.last_used_at, revokedAt=record.revoked_at, revokedBy=record.revoked_by,
        revokeReason=record.revoke_reason,
    )  # fmt: skip


@api.route(
    "POST", PATH, summary="Make an API key (the key is in this answer only)", body=KeyCreate,
    response=CreatedKey, errors=(400, 403, 409, 413), tags=KEYS, role=Role.ADMIN,
)  # fmt: skip
async def create_key(request: web.Request, body: KeyCreate) -> CreatedKey:
    identity = _identity(request)
    tenant = body.tenant if body.tenant is not None else identity.tenant
    role = Role(body.role)
    if tenant != identity.tenant or not identity.role.allows(role):
        # Another tenant's key, or a role above one's own: only the installation's superadmin.
        await authorize(request, Role.SUPERADMIN, PATH)
    if not tenant:
        raise WorkflowError(Code.BAD_INPUT, "tenant: name the tenant the key belongs to")
    if body.expiresAt is not None and body.expiresAt <= datetime.now(UTC):
        raise WorkflowError(Code.BAD_INPUT, "expiresAt: must be in the future")
    ring = request.app[keys.ACCESS]
    idempotency = context_of(request).idempotency
    if idempotency is not None:
        key_id, secret = api_keys.derived_secret(
            ring.secret, identity.actor, tenant, idempotency.key
        )
    else:
        key_id, secret = api_keys.new_id(), api_keys.new_secret()
    record = await ring.store.create(
        key_id=key_id, secret=secret, tenant=tenant, name=body.name, role=role,
        expires_at=body.expiresAt, caller=_caller(request),
    )  # fmt: skip
    made = (record.name, record.role, record.expires_at, record.created_by)
    if made != (body.name, role, body.expiresAt, identity.actor):
        raise WorkflowError(
            Code.IDEMPOTENCY_REUSED,
            "this Idempotency-Key made another key; send a new key for a new request",
        )
    await ring.reload()  # this process knows the key at once (the others when notified)
    return CreatedKey(**info(record).model_dump(), key=secret)


@api.route(
    "GET", PATH, summary="List API keys (revoked and expired ones too)", query=KeyListQuery,
    response=KeyList, paged=True, tags=KEYS, role=Role.ADMIN,
)  # fmt: skip
async def list_keys(request: web.Request, query: KeyListQuery) -> Paged:
    after = _cursor(query.cursor) if query.cursor else None
    status = None if query.status == "all" else query.status
    records = await request.app[keys.ACCESS].store.listed(
        tenant_of(request), after, query.pageSize + 1, status
    )
    page = records[: query.pageSize]
    more = len(records) > query.pageSize
    data = KeyList(keys=[info(r) for r in page], nextCursor=_next(page[-1]) if more else None)
    return Paged(data, Page(page=1, pageSize=query.pageSize, total=len(page)))


@api.route(
    "POST", PATH + "/{keyId}/revoke", summary="Revoke an API key (every process refuses it "
    "within a second; its console sessions end)", body=KeyRevoke, response=KeyInfo,
    errors=(400, 404, 413), tags=KEYS, role=Role.ADMIN,
)  # fmt: skip
async def revoke_key(request: web.Request, keyId: str, body: KeyRevoke) -> KeyInfo:
    ring = request.app[keys.ACCESS]
    if len(keyId) > 64:
        raise WorkflowError(Code.KEY_NOT_FOUND, "no such key here")
    # Every key is in memory; one made a moment ago elsewhere may not be yet: then the table.
    found = ring.key(keyId) or await ring.store.get(keyId)
    tenant = tenant_of(request)
    visible = found is not None and (tenant is None or found.tenant == tenant)
    if visible and found is not None and not _identity(request).role.allows(found.role):
        # A key above one's own role (a superadmin's living in this tenant): only a superadmin
        # revokes it.
        await authorize(request, Role.SUPERADMIN, PATH + "/{keyId}/revoke")
    record = await ring.store.revoke(
        keyId, tenant=tenant_of(request), caller=_caller(request, body.reason),
        reason=body.reason,
    )  # fmt: skip
    await ring.reload()
    return info(record)


def _next(record: KeyRecord) -> str:
    text = f"{record.created_at.isoformat()}|{record.key_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def _cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, key_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        moment = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeError):
        raise WorkflowError(Code.BAD_INPUT, "cursor: not a cursor this list gave") from None
    if moment.tzinfo is None or not key_id:
        raise WorkflowError(Code.BAD_INPUT, "cursor: not a cursor this list gave")
    return moment, key_id
