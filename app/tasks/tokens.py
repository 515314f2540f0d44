"""Task tokens: what a worker presents to heartbeat and complete the task it leased.

A token names the node execution, the polled operation (a polling node's poll is a task of
its own) and the claim (the how-manieth lease of this offer), with an HMAC-SHA256 of them and
the flow's tenant under the database's secret (the callback tokens' secret, with messages of
another shape: ``task`` NUL payload NUL tenant, where a callback's is node id NUL tenant and a
node id always holds a dot). Nothing is stored: any process checks a token, the claim in the
flow's row makes it good for one lease, and the node's state for one outcome.
"""

from __future__ import annotations

import binascii
import hmac
from dataclasses import dataclass

from flowlog.workflow.callbacks import CallbackTokens, b64, unb64

_PREFIX = "flt1"
_SEP = "\x1f"
MAX_TOKEN = 1024


@dataclass(frozen=True, slots=True)
class TaskToken:
    node_id: str
    operation_id: str | None
    claim: int

    @property
    def flow_id(self) -> str:
        """Node execution ids are ``<flow id>.<sequence>``."""
        return self.node_id.rsplit(".", 1)[0]

    def payload(self) -> str:
        return _SEP.join((self.node_id, self.operation_id or "", str(self.claim)))


def parse(token: str) -> TaskToken | None:
    """The task a token names, or None when it is no task token (nothing checked yet)."""
    if len(token) > MAX_TOKEN:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        return None
    try:
        fields = unb64(parts[1]).decode().split(_SEP)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if len(fields) != 3 or not fields[2].isdigit() or len(fields[2]) > 9:
        return None
    node_id, operation, claim = fields
    if "." not in node_id or "\x00" in node_id or "\x00" in operation:
        return None
    return TaskToken(node_id, operation or None, int(claim))


class TaskTokens:
    def __init__(self, signer: CallbackTokens) -> None:
        self._signer = signer

    async def _mac(self, task: TaskToken, tenant_id: str) -> str:
        return b64(await self._signer.mac(f"task\x00{task.payload()}\x00{tenant_id}"))

    async def token(self, task: TaskToken, tenant_id: str) -> str:
        return f"{_PREFIX}.{b64(task.payload().encode())}.{await self._mac(task, tenant_id)}"

    async def valid(self, token: str, task: TaskToken, tenant_id: str) -> bool:
        """Whether ``token`` is the token of ``task`` in a flow of ``tenant_id``."""
        return hmac.compare_digest(token.encode(), (await self.token(task, tenant_id)).encode())
