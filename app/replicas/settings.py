"""How reads go to replicas: what the environment says (app/config.py), kept apart from the
router so the settings load without asyncpg's pools."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReadSettings:
    urls: tuple[str, ...] = ()
    """The replicas' URLs (FLOWLOG_READ_DATABASE_URL); none: every read is the primary's."""
    max_lag: float = 10.0
    """A replica further behind than this many seconds is skipped (FLOWLOG_REPLICA_MAX_LAG)."""
    wait: float = 1.0
    """How long a read that presents a position waits for a replica to replay it before it
    reads from the primary (FLOWLOG_READ_WAIT_MS)."""
    interval: float = 1.0
    """How often each replica's state and lag are checked."""
    pool_size: int = 10
