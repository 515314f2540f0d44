"""Callback tokens: what the outside world presents to complete a callback node.

A token is the node execution's id and an HMAC-SHA256 of that id and the flow's tenant, under
a secret the database holds (``callback_secret``, made by migration 0007, never in the log).
So a token is unguessable, bound to one node execution of one flow of one tenant, and needs
no table of its own: any process computes and checks it, and the node's state makes it single
use (once the node has an outcome it waits for nothing). The log records only a token's id (a
fingerprint), so people who may read the history cannot complete nodes with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import asyncpg

from flowlog.workflow.queries import Q

_PREFIX = "fl1"
_MAX_TOKEN = 512


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_id(token: str) -> str:
    """The token's id in the history: a fingerprint that cannot be turned back into it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def node_of(token: str) -> str | None:
    """The node execution id a token names, or None when it is no token of ours."""
    if len(token) > _MAX_TOKEN:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        return None
    try:
        node_id = unb64(parts[1]).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return node_id if "." in node_id and "\x00" not in node_id else None


def flow_of(node_id: str) -> str:
    """Node execution ids are ``<flow id>.<sequence>`` (app/workflow/node_decisions.py)."""
    return node_id.rsplit(".", 1)[0]


class CallbackTokens:
    """Makes and checks tokens; the secret is read once per process, when first needed."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._secret: bytes | None = None

    async def _key(self) -> bytes:
        if self._secret is None:
            secret = await self._pool.fetchval(Q.callback_secret)
            if secret is None:
                raise RuntimeError("callback_secret is empty: run flowlog migrate")
            self._secret = str(secret).encode()
        return self._secret

    async def mac(self, message: str) -> bytes:
        """HMAC-SHA256 of ``message`` under the secret (task tokens sign with it too, with
        messages of their own shape: app/tasks/tokens.py)."""
        return hmac.new(await self._key(), message.encode(), hashlib.sha256).digest()

    async def token(self, node_id: str, tenant_id: str) -> str:
        mac = await self.mac(f"{node_id}\x00{tenant_id}")
        return f"{_PREFIX}.{b64(node_id.encode())}.{b64(mac)}"

    async def valid(self, token: str, node_id: str, tenant_id: str) -> bool:
        """Whether ``token`` is the token of ``node_id`` in a flow of ``tenant_id``."""
        return hmac.compare_digest(token.encode(), (await self.token(node_id, tenant_id)).encode())
