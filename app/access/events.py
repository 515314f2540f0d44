"""The events of access: a key's stream (``key-<id>``: made, then perhaps revoked) and the
refusals (``refusals-<actor>``: an identified caller asked for what its role does not allow, or
a log-in failed). Who acted is each event's ``metadata.actor``, as for every event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

KEY_STREAM = "key-"
REFUSALS_STREAM = "refusals-"


def key_stream(key_id: str) -> str:
    return KEY_STREAM + key_id


def refusals_stream(tenant: str, actor: str) -> str:
    """One stream per tenant and actor: refusals of different callers never contend for a
    version, and the stream says its tenant (hex: no tenant's name can pass for another's;
    none for a failed log-in, which has no tenant) for the Activity page's ``event_tenant``."""
    return f"{REFUSALS_STREAM}{tenant.encode().hex()}/{actor}"


class AccessEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyCreated(AccessEvent):
    type: Literal["KeyCreated"] = "KeyCreated"
    key_id: str
    tenant_id: str
    name: str
    role: str
    prefix: str
    digest: str
    """The key's SHA-256: the log can rebuild the table, and no reader of it can use the key."""
    expires_at: datetime | None = None


class KeyRevoked(AccessEvent):
    type: Literal["KeyRevoked"] = "KeyRevoked"
    key_id: str
    reason: str = ""


class AccessRefused(AccessEvent):
    """A caller was refused: what it asked, the role it needed and the role it had."""

    type: Literal["AccessRefused"] = "AccessRefused"
    tenant_id: str
    method: str
    route: str
    needed: str
    role: str
    reason: str = ""
    repeats: int = 0
    """Refusals of the same caller and route folded into this one since the last recorded
    (at most one is recorded every 10 s: a caller refused in a loop cannot fill the log)."""


class LoginRefused(AccessEvent):
    """A console log-in failed (a wrong key, or the identity provider's answer refused)."""

    type: Literal["LoginRefused"] = "LoginRefused"
    method: Literal["key", "oidc"]
    address: str
    reason: str
    repeats: int = 0
    """Failed log-ins folded into this one since the last recorded (one a second at most)."""


_Event = Annotated[
    KeyCreated | KeyRevoked | AccessRefused | LoginRefused, Field(discriminator="type")
]
_ADAPTER: TypeAdapter[_Event] = TypeAdapter(_Event)


def encode(event: AccessEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"type"})


def decode(event_type: str, data: dict[str, Any]) -> AccessEvent:
    return _ADAPTER.validate_python({**data, "type": event_type})
