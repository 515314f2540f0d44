"""API keys: how one is made and recognised, and what the service knows of one.

A key is ``flk_`` and 43 characters of a 256-bit secret. The service keeps only its SHA-256
(a secret of 256 random bits needs no slow hash: nothing can be guessed from its digest) and
its first characters, so that a person can tell their keys apart in a list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from flowlog.access.identity import Identity
from flowlog.access.roles import Role

PREFIX = "flk_"
SHOWN = 8
"""How many of a key's characters after its prefix lists show."""


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def derived_secret(
    server_secret: bytes, actor: str, tenant: str, idempotency_key: str
) -> tuple[str, str]:
    """A key's id and secret made from a create's Idempotency-Key: the same request sent again
    by the same caller answers the same key, although the service never stores a key (only
    its digest). The caller is part of the derivation: another caller sending the same
    Idempotency-Key makes another key, never learns this one."""
    message = f"api-key\x00{actor}\x00{tenant}\x00{idempotency_key}".encode()
    seed = hmac.new(server_secret, message, hashlib.sha256).digest()
    secret = hmac.new(seed, b"secret", hashlib.sha256).digest()
    key_id = hmac.new(seed, b"id", hashlib.sha256).hexdigest()[:32]
    return key_id, PREFIX + base64.urlsafe_b64encode(secret).decode().rstrip("=")


SECRET_LENGTH = len(PREFIX) + 43
"""``flk_`` and 256 bits in unpadded URL-safe base64 (new_secret's and derived_secret's)."""
_SECRET_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_")


def well_formed(presented: str) -> bool:
    """Whether ``presented`` has a key's form (what is looked for in the database)."""
    return (
        len(presented) == SECRET_LENGTH
        and presented.startswith(PREFIX)
        and _SECRET_CHARACTERS.issuperset(presented[len(PREFIX) :])
    )


def new_id() -> str:
    return secrets.token_hex(16)


def digest(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def shown(secret: str) -> str:
    return secret[: len(PREFIX) + SHOWN]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as the ``api_keys`` table holds it (the projection of its stream)."""

    key_id: str
    tenant: str
    name: str
    role: Role
    prefix: str
    digest: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None
    last_used_at: datetime | None = None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def identity(self) -> Identity:
        return Identity("key", self.name, self.tenant, self.role, self.key_id)
