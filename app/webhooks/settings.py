"""How webhooks are delivered: what the environment says (app/config.py) for one process."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowlog.webhooks.allow import AllowList

TIMEOUT_SECONDS = 5.0
"""A receiver answers within this or the attempt failed."""
MAX_ANSWER_BYTES = 64 * 1024
"""No more of a receiver's answer is read."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    allow: AllowList = field(default_factory=AllowList)
    """``FLOWLOG_WEBHOOK_ALLOW``: what webhooks may reach although it is not public."""
    retry_seconds: float = 24 * 3600.0
    """``FLOWLOG_WEBHOOK_RETRY_HOURS``: how long a failing delivery is retried (exponential
    backoff with jitter) before it is dead-lettered."""
    timeout: float = TIMEOUT_SECONDS
    max_answer: int = MAX_ANSWER_BYTES
