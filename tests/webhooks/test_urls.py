"""Where a webhook may go (app/webhooks/urls.py) and how deliveries are signed
(app/webhooks/signing.py): every class of address that is not public is refused unless
allowed, by address, network or host name; the resolver keeps only addresses a webhook may
reach; signatures verify with the ``standardwebhooks`` package and with plain HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from flowlog.webhooks.signing import headers, message_id, secret_message, secret_text, signature
from flowlog.webhooks.urls import (
    AllowList,
    BadWebhookUrl,
    GuardedResolver,
    address_allowed,
    check_url,
)
from flowlog.wire.webhooks import FlowEventName
from flowlog.workflow.events import EVENT_TYPES

NOTHING = AllowList()

REFUSED = [
    ("http://127.0.0.1/", "public"),
    ("http://127.8.9.10:8080/in", "public"),
    ("http://10.1.2.3/", "public"),
    ("http://172.16.0.1/", "public"),
    ("http://192.168.1.1/", "public"),
    ("http://169.254.169.254/latest/meta-data/", "public"),
    ("http://100.64.0.1/", "public"),
    ("http://224.0.0.1/", "public"),
    ("http://0.0.0.0/", "public"),
    ("http://255.255.255.255/", "public"),
    ("http://[::1]/", "public"),
    ("http://[::]/", "public"),
    ("http://[fc00::1]/", "public"),
    ("http://[fd12:3456::1]/", "public"),
    ("http://[fe80::1]/", "public"),
    ("http://[ff02::1]/", "public"),
    ("http://[::ffff:127.0.0.1]/", "public"),
    ("http://[::ffff:10.0.0.1]/", "public"),
    ("http://[64:ff9b::7f00:1]/", "public"),
    ("http://[64:ff9b::a9fe:a9fe]/", "public"),
    # Look-alike digits that yarl (and so aiohttp) folds into an address: checked as that.
    ("http://\u2460\u2461\u2466.0.0.1:5432/", "127.0.0.1 is not a public"),
    (
        "http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/",
        "169.254.169.254 is not",
    ),
    ("http://127\u30020\u30020\u30021/", "127.0.0.1 is not a public"),
    ("http://127.0.0.\u2460/", "127.0.0.1 is not a public"),
    ("http://127.0.0.%31/", "not a name"),
    # IPv6 forms that carry an IPv4 address: 6to4, IPv4-compatible, local NAT64.
    ("http://[2002:7f00:1::]/", "public"),
    ("http://[::7f00:1]/", "public"),
    ("http://[64:ff9b:1::a9fe:a9fe]/", "public"),
    ("http://2130706433/", "number"),
    ("http://0x7f.1/", "number"),
    ("http://0177.0.0.1/", "number"),
    ("http://localhost/", "this machine"),
    ("http://LOCALHOST./", "this machine"),
    ("http://api.localhost/", "this machine"),
    ("https://user:pass@example.com/", "credentials"),
    ("https://user@example.com/", "credentials"),
    ("https://example.com/in#part", "fragment"),
    ("https://example.com/in#", "fragment"),
    ("https://example.com:0/", "port"),
    ("https://example.com:65536/", "not a URL"),
    ("https://example.com:http/", "not a URL"),
    ("ftp://example.com/", "http"),
    ("file:///etc/passwd", "http"),
    ("gopher://example.com/", "http"),
    ("javascript:alert(1)", "http"),
    ("example.com/in", "http"),
    ("https:///in", "host"),
    ("https://example.com/" + "a" * 3000, "2048"),
    ("", "2048"),
    ("https://example.com/a b", "control"),
    ("https://example.com/\x00", "control"),
    ("https://example.com/\r\nHost: evil", "control"),
    ("https://exa\tmple.com/", "control"),
    ("https://example.com/\x7f", "control"),
]


@pytest.mark.parametrize(("url", "says"), REFUSED)
def test_urls_no_webhook_may_reach_are_refused(url: str, says: str) -> None:
    with pytest.raises(BadWebhookUrl, match=says):
        check_url(url, NOTHING)


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/flowlog", "http://93.184.216.34:8080/in?x=1",
     "https://[2606:4700::1111]/in", "https://example.com:443/a/b?c=d&e=f"],
)  # fmt: skip
def test_public_urls_pass_as_they_are(url: str) -> None:
    assert check_url(url, NOTHING) == url


def test_the_allow_list_opens_addresses_networks_and_hosts() -> None:
    allow = AllowList.parse("127.0.0.1, 10.0.0.0/8, [::1], Hooks.Internal., localhost")
    assert check_url("http://127.0.0.1:9000/in", allow)
    assert check_url("http://10.200.3.4/in", allow)
    assert check_url("http://[::1]:8080/in", allow)
    assert check_url("http://hooks.internal/in", allow)
    assert check_url("http://localhost:8000/in", allow)
    # What is not listed stays refused.
    for url in ("http://127.0.0.2/", "http://192.168.0.1/", "http://169.254.169.254/",
                "http://api.localhost/"):  # fmt: skip
        with pytest.raises(BadWebhookUrl):
            check_url(url, allow)
    # The mapped and NAT64 forms of an allowed IPv4 address are that address.
    assert address_allowed("::ffff:127.0.0.1", allow)
    assert address_allowed("64:ff9b::7f00:1", allow)
    assert not address_allowed("::ffff:127.0.0.2", allow)
    assert address_allowed("fe80::1%eth0", AllowList.parse("fe80::/10"))


@pytest.mark.parametrize("entry", ["a b", "x/y", "user@host", "\x00", "a" * 254])
def test_an_allow_list_entry_that_is_nothing_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="FLOWLOG_WEBHOOK_ALLOW"):
        AllowList.parse(entry)


class FixedResolver(AbstractResolver):
    """Answers fixed addresses for every name (the network's part, not the database's)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0,
                          flags=socket.AI_NUMERICHOST)
            for a in self.addresses
        ]  # fmt: skip

    async def close(self) -> None:
        pass


async def test_the_resolver_keeps_only_addresses_a_webhook_may_reach() -> None:
    mixed = FixedResolver(["10.0.0.5", "93.184.216.34", "169.254.169.254", "::1",
                           "2606:4700::1111", "::ffff:127.0.0.1"])  # fmt: skip
    kept = await GuardedResolver(NOTHING, mixed).resolve("hooks.example.com", 443)
    assert [r["host"] for r in kept] == ["93.184.216.34", "2606:4700::1111"]
    # A name that resolves only to private addresses (DNS rebinding) fails as unknown.
    private = FixedResolver(["127.0.0.1", "10.0.0.1", "fd00::1"])
    with pytest.raises(OSError, match="no address"):
        await GuardedResolver(NOTHING, private).resolve("rebind.example.com", 443)
    # Allowed by network, or by the name itself.
    by_network = await GuardedResolver(AllowList.parse("10.0.0.0/8"), private).resolve("x", 80)
    assert [r["host"] for r in by_network] == ["10.0.0.1"]
    by_name = await GuardedResolver(AllowList.parse("hooks.internal"), private).resolve(
        "hooks.internal", 80
    )
    assert len(by_name) == 3


def test_a_signed_delivery_verifies_with_the_standard_webhooks_package() -> None:
    key = hashlib.sha256(b"installation").digest()
    secret = secret_text(key)
    assert secret.startswith("whsec_")
    body = b'{"type":"FlowFailed","data":{"flowId":"f"}}'
    msg_id = message_id("0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b", 42)
    now = int(time.time())
    sent = headers(key, msg_id, now, body)
    assert sent["webhook-id"] == msg_id
    verified: Any = Webhook(secret).verify(body, sent)
    assert verified == {"type": "FlowFailed", "data": {"flowId": "f"}}
    # Plain HMAC, as docs/webhooks.md shows a receiver without the package.
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(raw, f"{msg_id}.{now}.".encode() + body, hashlib.sha256).digest()
    assert sent["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    # Another body, another secret, an old timestamp: refused.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", sent)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_text(b"k" * 32)).verify(body, sent)
    old = headers(key, msg_id, now - 3600, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, old)
    assert signature(key, msg_id, now, body) == sent["webhook-signature"]


def test_secrets_differ_by_subscription_and_version() -> None:
    messages = {secret_message(w, v) for w in ("a", "b") for v in (1, 2)}
    assert len(messages) == 4
    assert secret_message("a", 12) != secret_message("a1", 2)


def test_the_wire_names_every_flow_event_type() -> None:
    assert set(FlowEventName.__args__) == set(EVENT_TYPES)


def _docs_block(marker: str) -> str:
    """The Python block of docs/webhooks.md that holds ``marker``, as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def test_the_receivers_in_the_docs_verify_a_delivery_and_refuse_a_forged_one() -> None:
    key = hashlib.sha256(b"another installation").digest()
    secret = secret_text(key)
    body = b'{"type":"FlowFailed"}'
    sent = headers(key, message_id("w", 7), int(time.time()), body)
    plain: dict[str, Any] = {}
    exec(_docs_block("def verify("), plain)
    plain["verify"](secret, sent, body)
    with pytest.raises(ValueError, match="bad signature"):
        plain["verify"](secret, sent, body.replace(b"Failed", b"Finished"))
    with pytest.raises(ValueError, match="too far"):
        plain["verify"](secret, headers(key, "m", int(time.time()) - 3600, body), body)
    packaged: dict[str, Any] = {}
    exec(_docs_block("def receive(").replace('"whsec_..."', repr(secret)), packaged)
    assert packaged["receive"](body, sent) == {"type": "FlowFailed"}
    with pytest.raises(WebhookVerificationError):
        packaged["receive"](body + b" ", sent)
