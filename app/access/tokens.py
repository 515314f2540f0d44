"""FLOWLOG_TOKENS: ``name:token:tenant`` entries from the environment, read at start. Each is
an admin of its tenant (as they were before roles: everything in their tenant), so that no
installation breaks when keys arrive."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from flowlog.access.identity import Identity
from flowlog.access.roles import Role


@dataclass(frozen=True)
class Tokens:
    by_token: Mapping[str, Identity] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.by_token)

    @classmethod
    def parse(cls, text: str) -> Tokens:
        """``name:token:tenant`` entries separated by commas."""
        tokens: dict[str, Identity] = {}
        for entry in filter(None, (part.strip() for part in text.split(","))):
            name, sep, rest = entry.partition(":")
            token, sep2, tenant = rest.partition(":")
            if not (sep and sep2 and name and token and tenant):
                raise ValueError(f"a token is name:token:tenant, not {entry!r}")
            if any(known.name == name for known in tokens.values()):
                # The log's actor token:<name> must stand for one token, and a console session
                # names its token.
                raise ValueError(f"two tokens are named {name!r}: give each its own name")
            tokens[token] = Identity("token", name, tenant, Role.ADMIN)
        return cls(tokens)

    @property
    def tenants(self) -> list[str]:
        return sorted({identity.tenant for identity in self.by_token.values()})

    def identify(self, presented: str) -> Identity | None:
        found = None
        for token, identity in self.by_token.items():  # compare with every one: constant time
            if hmac.compare_digest(presented.encode(), token.encode()):
                found = identity
        return found

    def by_fingerprint(self, name: str, fingerprint: str) -> Identity | None:
        """The token named ``name`` whose digest is ``fingerprint`` (a session's binding)."""
        for token, identity in self.by_token.items():
            digest = hashlib.sha256(token.encode()).hexdigest()[:32]
            if identity.name == name and hmac.compare_digest(digest, fingerprint):
                return identity
        return None

    def fingerprint(self, name: str) -> str | None:
        """A digest of the token named ``name`` (its sessions carry it: a token rotated
        under the same name ends the sessions of the old one)."""
        for token, identity in self.by_token.items():
            if identity.name == name:
                return hashlib.sha256(token.encode()).hexdigest()[:32]
        return None
