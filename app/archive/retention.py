"""The owner's retention, kept in the database (``archive_retention``, migration 0010).

The archiver runs as the runtime role, and the removal (``flowlog_remove_archived()``) checks
each flow's age against this setting, which only the owner can write: the environment of a
process that serves cannot shorten it. ``flowlog migrate`` (and ``serve``/``worker`` when they
migrate as the owner at start) writes the environment's FLOWLOG_RETENTION and
FLOWLOG_RETENTION_DEFINITIONS here; every archive run reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flowlog.archive.policy import Retention
from flowlog.archive.queries import Q
from flowlog.eventstore.pool import Executor

DEFAULT = ""
"""The row of the default retention (a definition's name is never empty)."""


@dataclass(frozen=True, slots=True)
class StoredRetention:
    retention: Retention
    set_at: datetime | None
    """When it last changed (None: never set, so off)."""
    set_by: str | None

    def describe(self) -> str:
        if self.set_at is None:
            return f"{self.retention.describe()} (never set)"
        at = self.set_at.isoformat(timespec="seconds")
        return f"{self.retention.describe()} (set by {self.set_by} at {at})"


async def load_retention(executor: Executor) -> StoredRetention:
    rows = await executor.fetch(Q.retention)
    default: timedelta | None = None
    own: dict[str, timedelta | None] = {}
    for row in rows:
        if row["definition"] == DEFAULT:
            default = row["keep"]
        else:
            own[row["definition"]] = row["keep"]
    latest = max(rows, key=lambda r: r["set_at"], default=None)
    return StoredRetention(
        Retention(default, own),
        None if latest is None else latest["set_at"],
        None if latest is None else latest["set_by"],
    )


async def store_retention(executor: Executor, retention: Retention) -> bool:
    """Makes the database's retention ``retention`` (the owner's right); whether it changed."""
    names = [DEFAULT, *sorted(retention.by_definition)]
    keeps = [retention.default, *(retention.by_definition[n] for n in names[1:])]
    return bool(await executor.fetchval(Q.store_retention, names, keeps))
