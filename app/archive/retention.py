"""The owner's retention, kept in the database (``archive_retention``, migration 0010).

The archiver runs as the runtime role, and the removal (``flowlog_remove_archived()``) checks
each flow's age against this setting, which only the owner can write: the environment of a
process that serves cannot shorten it. ``flowlog migrate`` (and ``serve``/``worker`` at start,
right after the migrations) writes the environment's FLOWLOG_RETENTION and
FLOWLOG_RETENTION_DEFINITIONS here with ``settle_retention``; every archive run reads it from
here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from flowlog.archive.policy import Retention
from flowlog.archive.queries import Q
from flowlog.eventstore.pool import Executor
from flowlog.migrate import MigrationError, prepare_schema, session_role
from flowlog.roles import DatabaseUrls

log = logging.getLogger(__name__)

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


async def settle_retention(
    urls: DatabaseUrls | str, retention: Retention, *, serving: bool = False
) -> None:
    """Makes ``retention`` (the environment's) the database's, as the owner: with the owner's
    URL, or DATABASE_URL's when that role owns the log. A runtime role cannot write it: a
    different one is refused, or only warned of when ``serving`` (the database's applies)."""
    if isinstance(urls, str):
        urls = DatabaseUrls(urls)
    conn = await asyncpg.connect(urls.owner_url or urls.url)
    try:
        role, can_change_log = await session_role(conn)
        if urls.owner_url is not None or can_change_log:
            if await store_retention(conn, retention):
                log.info("retention set", extra={"retention": retention.describe()})
            return
        stored = await load_retention(conn)
    finally:
        await conn.close()
    if stored.retention == retention:
        return
    message = (
        f"the environment's retention ({retention.describe()}) is not the database's "
        f"({stored.describe()}), and role {role} may not change it: run `flowlog migrate` "
        "with FLOWLOG_OWNER_URL set to the owner role's URL"
    )
    if not serving:
        raise MigrationError(message)
    log.warning(message + "; the database's applies", extra={"see": "docs/archival.md"})


async def prepare_with_retention(
    urls: DatabaseUrls, retention: Retention | None, *, serving: bool = False
) -> list[int]:
    """The schema brought up to date (``prepare_schema``), then the environment's retention
    settled when it names one: what ``flowlog migrate`` and every process's start do."""
    applied = await prepare_schema(urls, serving=serving)
    if retention is not None:
        await settle_retention(urls, retention, serving=serving)
    return applied
