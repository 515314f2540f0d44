"""API keys on the wire: a create, a revocation, and what the service answers of a key (never
the key itself, except once in the create's answer)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from flowlog.wire.base import IsoDatetime, Request, Response

KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
TENANT_PATTERN = r"^[A-Za-z0-9_.@-]{1,100}$"

RoleName = Literal["viewer", "operator", "admin", "superadmin"]
KeyName = Annotated[str, Field(pattern=KEY_NAME_PATTERN)]


class KeyCreate(Request):
    name: KeyName
    """Unique in its tenant for ever: the log names the key's actions ``key:<name>``."""
    role: RoleName
    expiresAt: IsoDatetime | None = None
    """When the key stops working (in the future); none: when it is revoked."""
    tenant: Annotated[str, Field(pattern=TENANT_PATTERN)] | None = None
    """Another tenant's key: a superadmin's only (others make keys of their own tenant)."""


class KeyRevoke(Request):
    reason: str = Field("", max_length=1000)


class KeyListQuery(Request):
    status: Literal["active", "expired", "revoked", "all"] = "all"
    cursor: str = Field("", max_length=200)
    """The ``nextCursor`` of the page before."""
    pageSize: int = Field(50, ge=1, le=200)


class KeyInfo(Response):
    id: str
    name: str
    tenant: str
    role: RoleName
    prefix: str
    """The key's first characters, to tell keys apart."""
    status: Literal["active", "expired", "revoked"]
    createdAt: datetime
    createdBy: str
    expiresAt: datetime | None
    lastUsedAt: datetime | None
    """Within a few seconds (uses are written in batches)."""
    revokedAt: datetime | None
    revokedBy: str | None
    revokeReason: str | None


class CreatedKey(KeyInfo):
    key: str
    """The key: shown this once (a create sent again with its Idempotency-Key shows it
    again); the service keeps only its SHA-256."""


class KeyList(Response):
    keys: list[KeyInfo]
    nextCursor: str | None
