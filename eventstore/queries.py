"""The event store's statements, loaded from sql/queries/eventstore.sql by name."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class EventStoreQueries:
    append_with: str
    append_one_with: str
    append_batch_with: str
    stream_version: str
    stream_versions: str
    read_stream: str
    read_all: str
    checkpoint_now: str
    more_after: str
    horizon_check: str
    begin: str
    commit: str
    rollback: str
    savepoint: str
    rollback_to_savepoint: str
    release_savepoint: str
    notify: str
    subscription_ensure: str
    subscription_try_lock: str
    subscription_checkpoint: str
    subscription_advance: str
    removed_after: str
    removal_horizon: str


Q = load_queries(EventStoreQueries, "eventstore")
