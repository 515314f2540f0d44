"""What one process's sender saw of each subscription (deliveries, failed attempts, dead
letters, the last answer), added to ``webhook_status`` in one statement a second: every
sender delivering a subscription updating its one row per delivery would queue them all on
that row's lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from flowlog.webhooks.queries import Q


@dataclass(slots=True)
class Tally:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    status: int | None = None
    answer: str | None = None
    failing: bool | None = None
    """After the last outcome: True (a dead letter), False (a success), None (unchanged)."""


class Outcomes:
    def __init__(self) -> None:
        self._tallies: dict[str, Tally] = {}

    def delivered(self, webhook_id: str, count: int, status: int | None) -> None:
        tally = self._tallies.setdefault(webhook_id, Tally())
        tally.delivered += count
        tally.delivered_at = datetime.now(UTC)
        tally.status, tally.answer, tally.failing = status, None, False

    def failed(self, webhook_id: str, status: int | None, answer: str | None, dead: bool) -> None:
        tally = self._tallies.setdefault(webhook_id, Tally())
        tally.failed += 1
        tally.failed_at = datetime.now(UTC)
        tally.status, tally.answer = status, answer
        if dead:
            tally.dead += 1
            tally.failing = True

    async def report(self, pool: asyncpg.Pool) -> None:
        """Adds what was seen since the last report; kept for the next one if this fails."""
        tallies, self._tallies = self._tallies, {}
        if not tallies:
            return
        ids = sorted(tallies)
        rows = [tallies[i] for i in ids]
        try:
            await pool.execute(
                Q.count_outcomes, ids, [t.delivered for t in rows], [t.failed for t in rows],
                [t.dead for t in rows], [t.delivered_at for t in rows],
                [t.failed_at for t in rows], [t.status for t in rows], [t.answer for t in rows],
                [t.failing for t in rows],
            )  # fmt: skip
        except BaseException:
            for webhook_id, tally in tallies.items():
                self._merge(webhook_id, tally)
            raise

    def _merge(self, webhook_id: str, older: Tally) -> None:
        newer = self._tallies.get(webhook_id)
        if newer is None:
            self._tallies[webhook_id] = older
            return
        newer.delivered += older.delivered
        newer.failed += older.failed
        newer.dead += older.dead
        newer.delivered_at = newer.delivered_at or older.delivered_at
        newer.failed_at = newer.failed_at or older.failed_at
        if newer.failing is None:
            newer.failing = older.failing
