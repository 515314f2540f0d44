"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A subscription's secret is not stored anywhere: it is an HMAC of the subscription's id and
secret version under the installation's secret (``callback_secret``, never in the log), so
every process computes it and the log holds nothing a reader could sign with. Shown once, at
the create (and at each rotation), in the specification's ``whsec_<base64>`` form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"


def secret_message(webhook_id: str, secret_version: int) -> str:
    """What the installation's secret signs to make a subscription's secret."""
    return f"webhook\x00{webhook_id}\x00{secret_version}"


def secret_text(key: bytes) -> str:
    """The secret as a receiver configures it (the specification's form)."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


def message_id(webhook_id: str, position: int) -> str:
    """A delivery's ``webhook-id``: the same for every attempt and replay of one event to one
    subscription, so that receivers can drop duplicates."""
    return f"msg_{webhook_id}_{position}"


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value: ``v1,<base64 HMAC-SHA256>`` of
    ``{id}.{timestamp}.{body}``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a delivery (and its content type)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, body),
    }
