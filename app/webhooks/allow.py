"""``FLOWLOG_WEBHOOK_ALLOW``, parsed: the settings read it at start-up, so it stands apart from
the checks of app/webhooks/urls.py and the HTTP client they need."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AllowList:
    """``FLOWLOG_WEBHOOK_ALLOW``: comma-separated addresses, networks (CIDR) and host names
    that webhooks may reach although they are not public."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str | None) -> AllowList:
        networks: list[Network] = []
        hosts: set[str] = set()
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                name = entry.lower().rstrip(".")
                if not name or any(c in name for c in "/:@ \t\x00") or len(name) > 253:
                    raise ValueError(
                        f"FLOWLOG_WEBHOOK_ALLOW: {entry!r} is neither an address, a network "
                        "nor a host name"
                    ) from None
                hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: Address) -> bool:
        return any(address in network for network in self.networks)
