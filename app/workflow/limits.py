"""Flow control's settings (docs/workers.md, "Flow control"): how many flows of a definition,
or executions of a node, run at once per key value, and how often a node may start per key
value. Pure: the key's value of a flow, the checks, how they enter a definition's version.
Where they are enforced (in the database, for every process): app/workflow/admission.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

MAX_LIMIT = 100_000
_KEY = re.compile(r"^(bizId|tenant|context\.[^\x00]{1,200})$")
KEY_HELP = 'the key is "bizId", "tenant" or "context.<key>"'


def key_value(key: str, biz_id: str, tenant_id: str, context: Any) -> str:
    """The value of ``key`` for a flow: its bizId, its tenant, or a context key's value (JSON
    text for what is not text; "" when the context lacks it: one group of its own)."""
    if key == "bizId":
        return biz_id
    if key == "tenant":
        return tenant_id
    value = context.get(key.removeprefix("context.")) if hasattr(context, "get") else None
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _key_problems(key: str) -> list[str]:
    return [] if isinstance(key, str) and _KEY.match(key) else [KEY_HELP]


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` flows of a definition (or executions of a node) at once per value of
    ``key``; the others wait, in the order their flows were created."""

    key: str
    limit: int

    def problems(self) -> list[str]:
        found = _key_problems(self.key)
        if not 1 <= self.limit <= MAX_LIMIT:
            found.append(f"a concurrency limit is 1 to {MAX_LIMIT}")
        return found

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "limit": self.limit}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` starts of a node per ``period_seconds`` per value of ``key``, evenly
    spaced (one every period / limit), not all at the period's edge."""

    key: str
    limit: int
    period_seconds: float

    @property
    def spacing(self) -> float:
        return self.period_seconds / self.limit

    def problems(self) -> list[str]:
        found = _key_problems(self.key)
        if not 1 <= self.limit <= MAX_LIMIT:
            found.append(f"a rate limit is 1 to {MAX_LIMIT} starts")
        if not 0 < self.period_seconds <= 86_400:
            found.append("a rate limit's period is more than 0 and at most 86400 seconds")
        return found

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "limit": self.limit, "periodSeconds": self.period_seconds}


def flow_scope(definition: str) -> str:
    """The scope of a definition's concurrency: its name (every version counts)."""
    return f"flow:{definition}"


def node_scope(definition: str, node_key: str) -> str:
    return f"node:{definition}/{node_key}"


def rate_scope(definition: str, node_key: str) -> str:
    return f"rate:{definition}/{node_key}"


def scope_parts(scope: str) -> tuple[str, str | None]:
    """A scope's kind ("flow", "node", "rate") and node key (None: the definition's). A
    definition's name may hold a "/", a limited node's key may not."""
    kind, _, where = scope.partition(":")
    return kind, None if kind == "flow" else where.rpartition("/")[2]
