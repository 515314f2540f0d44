"""Who a request is: a key, a FLOWLOG_TOKENS token, a person signed in through the identity
provider, or nobody on an open server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flowlog.access.roles import Role

Kind = Literal["key", "token", "oidc", "open"]


@dataclass(frozen=True, slots=True)
class Identity:
    kind: Kind
    name: str
    """The key's or token's name, the person's user name: with the kind, the actor."""
    tenant: str
    role: Role
    key_id: str | None = None
    """The key's id (keys only): its revocation ends the identity's sessions."""
    display: str = ""
    """A person's name to show (single sign-on: ``name`` is the provider's subject, which no
    one can change or share, so the log's actor stays one person)."""

    @property
    def shown(self) -> str:
        return self.display or self.name

    @property
    def actor(self) -> str:
        """How the log names who acted (every event's ``metadata.actor``)."""
        return "anonymous" if self.kind == "open" else f"{self.kind}:{self.name}"

    @property
    def every_tenant(self) -> bool:
        """Whether it sees every tenant (an installation's superadmin)."""
        return self.role is Role.SUPERADMIN


OPEN = Identity("open", "anonymous", "", Role.SUPERADMIN)
"""Whoever calls a server that has no keys, no tokens and no identity provider: it may do
everything, in every tenant (flowlog's behaviour before access control, kept for development)."""
