"""What single sign-on is configured with: the identity provider, the client registered there,
and which values of one claim give which tenant and role. Checked when built, so that a bad
setting stops the process at start (app/config.py names its variable) rather than at the
first person's sign-in; the client (app/access/oidc.py) uses them as given."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

ROLES: Final = ("viewer", "operator", "admin", "superadmin")
"""The roles a mapping may give, lowest first: a person matched by several gets the highest."""


@dataclass(frozen=True)
class MappingEntry:
    """People whose claim holds ``value`` get ``role`` in ``tenant`` (``*``: every tenant)."""

    value: str
    tenant: str
    role: str


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str, *, allow_http: bool) -> None:
    """Refuses (ValueError) a URL that is not https (or http where ``allow_http``), has no
    host, or has a fragment: the issuer's, and the endpoints its discovery names."""
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (allow_http and parts.scheme == "http")
    if secure and parts.hostname and not parts.fragment:
        return
    raise ValueError(f"{what} must be an https URL, not {url!r}")


@dataclass(frozen=True)
class OidcSettings:
    """The client's settings: the provider (its issuer URL, exactly as its tokens name it),
    the client registered there, and the mapping of ``claim`` onto tenants and roles."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    mapping: tuple[MappingEntry, ...]
    claim: str = "groups"
    scopes: str = "openid email profile"
    timeout: float = 5.0

    def __post_init__(self) -> None:
        # Plain http only on this host (tests, a provider beside the service): elsewhere the
        # discovery document and its keys could be swapped on the way.
        host = urlsplit(self.issuer).hostname
        check_url(self.issuer, "the OIDC issuer", allow_http=_is_loopback(host))
        if urlsplit(self.issuer).query:
            raise ValueError("the OIDC issuer must not have a query")
        if not self.client_id:
            raise ValueError("the OIDC client id is empty")
        if "openid" not in self.scopes.split():
            raise ValueError("the OIDC scopes must include openid")
        if not self.claim:
            raise ValueError("the OIDC claim name is empty")
        if not self.mapping:
            raise ValueError("the OIDC mapping has no entries: nobody could sign in")
        if self.timeout <= 0:
            raise ValueError("the OIDC timeout must be positive")

    @classmethod
    def parse_mapping(cls, text: str) -> tuple[MappingEntry, ...]:
        """``value=tenant:role`` entries separated by commas; a value may hold ``=`` (the last
        one separates it from the tenant), a tenant neither ``:`` nor ``=``, and ``*`` (every
        tenant) goes only with superadmin."""
        entries: list[MappingEntry] = []
        seen: set[tuple[str, str]] = set()
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            value, equals, grant = entry.rpartition("=")
            tenant, colon, role = grant.partition(":")
            value, tenant, role = value.strip(), tenant.strip(), role.strip()
            if not (equals and colon and value and tenant and role):
                raise ValueError(f"an OIDC mapping entry is value=tenant:role, not {entry!r}")
            if role not in ROLES:
                raise ValueError(f"{entry!r}: the role {role!r} is none of {', '.join(ROLES)}")
            if any(not ch.isprintable() or ch.isspace() for ch in value + tenant):
                raise ValueError(f"{entry!r}: spaces or control characters in a value or tenant")
            if tenant == "*" and role != "superadmin":
                raise ValueError(f"{entry!r}: the tenant * (every tenant) is only for superadmin")
            if (value, tenant) in seen:
                raise ValueError(f"{entry!r}: {value!r} is mapped to {tenant!r} twice")
            seen.add((value, tenant))
            entries.append(MappingEntry(value, tenant, role))
        if not entries:
            raise ValueError("the OIDC mapping has no entries: nobody could sign in")
        return tuple(entries)
