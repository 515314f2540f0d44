"""Console sessions: a cookie that says who signed in, until when, signed (HMAC-SHA256) with a
key derived from the installation's secret, so that any process checks it without a session
store. What it names is looked up again on every request: a revoked key, a rotated token, ends
its sessions at once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from flowlog.access.identity import Identity
from flowlog.access.roles import Role

SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """A console log-in: whose, until when, and the secret its CSRF token derives from."""

    identity: Identity
    expires: int
    nonce: str
    key: bytes = field(repr=False)

    @property
    def csrf_token(self) -> str:
        return mac(self.key, f"csrf\x00{self.nonce}".encode())

    def accepts_csrf(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(
            (presented or "").encode(), self.csrf_token.encode()
        )


@dataclass(frozen=True, slots=True)
class Claims:
    """What a session cookie says, once its signature is checked: who (``kind``, ``name``,
    tenant, role), what binds it (a key's id, a token's fingerprint; a person's name to show,
    for single sign-on), until when."""

    kind: str
    name: str
    tenant: str
    role: Role
    binding: str
    expires: int
    nonce: str


def session_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"flowlog console sessions", hashlib.sha256).digest()


def seal(key: bytes, identity: Identity, binding: str, expires: int) -> tuple[str, Session]:
    nonce = secrets.token_urlsafe(16)
    body: list[Any] = [identity.kind, identity.name, identity.tenant, identity.role.value,
                       binding, expires, nonce]  # fmt: skip
    payload = b64(orjson.dumps(body))
    return f"{payload}.{mac(key, payload.encode())}", Session(identity, expires, nonce, key)


def unseal(key: bytes, cookie: str, now: float) -> Claims | None:
    """The claims of a cookie this key signed and whose time has not passed, else None."""
    payload, _, signature = cookie.partition(".")
    if not hmac.compare_digest(mac(key, payload.encode()).encode(), signature.encode()):
        return None
    try:
        kind, name, tenant, role, binding, expires, nonce = orjson.loads(
            base64.urlsafe_b64decode(payload + "==")
        )
        claims = Claims(kind, name, tenant, Role(role), binding, int(expires), nonce)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        return None
    return claims if claims.expires >= now else None


def mac(key: bytes, message: bytes) -> str:
    return b64(hmac.new(key, message, hashlib.sha256).digest())


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
