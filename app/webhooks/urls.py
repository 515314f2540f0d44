"""Where a webhook may be sent: URLs checked when a subscription is made or changed, and
addresses checked again at every connection (a name that resolved to a public address when
the subscription was made may resolve to a private one later).

Only global unicast addresses are allowed, unless an address, a network or the URL's host
name is listed in ``FLOWLOG_WEBHOOK_ALLOW``: loopback, private, link-local (cloud metadata at
169.254.169.254), shared (100.64/10), multicast, reserved and unspecified addresses are
refused, IPv4-mapped and NAT64-embedded IPv6 addresses as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from flowlog.webhooks.allow import Address, AllowList

MAX_URL = 2048

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# IPv6 forms that carry an IPv4 address a router may turn back into it: well-known and local
# NAT64, 6to4, and the deprecated IPv4-compatible addresses. Python calls some of them global.
_CARRIERS: tuple[ipaddress.IPv6Network, ...] = (
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("2002::/16"),
    ipaddress.IPv6Network("::/96"),
)


class BadWebhookUrl(ValueError):
    """A URL no webhook may be sent to; the message says why."""


def _carried(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, compatible), else
    itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64 or any(address in network for network in _CARRIERS):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_allowed(address: Address | str, allow: AllowList) -> bool:
    """Whether a webhook may connect to ``address``."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])
    if allow.allows_address(address):
        return True
    carried = _carried(address)
    if carried is not address and allow.allows_address(carried):
        return True
    return carried.is_global and not carried.is_multicast


def check_url(url: str, allow: AllowList) -> str:
    """The URL as it will be called, or BadWebhookUrl: ``http``/``https`` with a host, no
    credentials or fragment, at most 2,048 characters, and an address literal only where
    allowed. Host names are checked again at each connection (``GuardedResolver``)."""
    if not url or len(url) > MAX_URL:
        raise BadWebhookUrl(f"a webhook URL has 1 to {MAX_URL} characters")
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise BadWebhookUrl("a webhook URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadWebhookUrl(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise BadWebhookUrl("a webhook URL is http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadWebhookUrl("a webhook URL carries no credentials (they would be logged)")
    if parts.fragment or url.endswith("#"):
        raise BadWebhookUrl("a webhook URL has no fragment")
    try:
        # The host as aiohttp will connect to it (yarl's IDNA and NFKC folding): `①②⑦.0.0.1`
        # and full-width digits are 127.0.0.1 there, whatever the text of the URL says.
        host = (URL(url).raw_host or "").rstrip(".")
    except ValueError as exc:
        raise BadWebhookUrl(f"not a host name: {exc}") from None
    if not host:
        raise BadWebhookUrl("a webhook URL names a host")
    if not host.isascii() or "%" in host:
        raise BadWebhookUrl("a webhook URL's host is not a name or an address")
    if port == 0:
        raise BadWebhookUrl("a webhook URL's port is 1 to 65535")
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not address_allowed(literal, allow):
            raise BadWebhookUrl(
                f"{host} is not a public address: list it in FLOWLOG_WEBHOOK_ALLOW to send "
                "webhooks there"
            )
    elif not allow.allows_host(host):
        try:
            ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host)))
        except OSError:
            pass
        else:  # 2130706433 or 0x7f.1: a number the resolver would read as an address
            raise BadWebhookUrl(f"{host} is an address written as a number")
        if host == "localhost" or host.endswith(".localhost"):
            raise BadWebhookUrl(
                f"{host} is this machine: list it in FLOWLOG_WEBHOOK_ALLOW to send webhooks there"
            )
    return url


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses a webhook may reach: a name that
    resolves to none of them fails the connection as an unknown name would."""

    def __init__(self, allow: AllowList, resolver: AbstractResolver | None = None) -> None:
        self._allow = allow
        self._resolver = resolver or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        if self._allow.allows_host(host):
            return found
        kept = [entry for entry in found if address_allowed(entry["host"], self._allow)]
        if not kept:
            raise OSError(f"{host} resolves to no address webhooks may reach")
        return kept

    async def close(self) -> None:
        await self._resolver.close()
