"""The named statements of webhook delivery (sql/queries/webhook_delivery.sql)."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class DeliveryQueries:
    subscribers: str
    forget_deleted: str
    flows_of: str
    status_before: str
    enqueue: str
    claim: str
    renew: str
    next_rows: str
    delivered: str
    failed: str
    count_outcomes: str
    lock_lane: str
    finish: str
    release: str
    next_due: str
    webhook_of: str
    deliveries: str
    resend: str
    lock_cursor: str
    event_at: str
    event_since: str
    rewind: str
    lag: str
    replay_event: str
    changed: str


Q = load_queries(DeliveryQueries, "webhook_delivery")
