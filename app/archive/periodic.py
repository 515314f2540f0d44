"""Archive runs in ``serve`` and ``worker``: every interval, the process that takes the
archiver's lock (a session advisory lock on a connection of its own) runs one; the others
skip that turn. A process that dies lets go of the lock with its connection."""

from __future__ import annotations

import asyncio
import logging

from flowlog.archive.archiver import Archiver, ArchiveReport
from flowlog.archive.policy import ArchiveSettings
from flowlog.archive.queries import Q
from flowlog.eventstore import EventStore, connect
from flowlog.workflow.caller import Caller

log = logging.getLogger(__name__)


class ArchiveLoop:
    def __init__(
        self, database_url: str, store: EventStore, settings: ArchiveSettings, interval: float
    ) -> None:
        self._url = database_url
        self._archiver = Archiver(store, settings, Caller(actor="archiver", reason="retention"))
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="archiver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self) -> bool:
        """One run if this process gets the lock; whether it did."""
        report = await locked_run(self._url, self._archiver)
        if report is None:
            return False
        if report.flows or report.archives:
            log.info(
                "archive run",
                extra={
                    "archives": len(report.archives), "flows": report.flows,
                    "removed": report.removed, "kept": report.kept, "bytes": report.bytes,
                    "seconds": round(report.seconds, 2),
                },
            )  # fmt: skip
        return True

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception:  # the loop must outlive any one failure
                log.exception("archive run failed")


async def locked_run(
    database_url: str, archiver: Archiver, *, limit: int | None = None, progress: bool = False
) -> ArchiveReport | None:
    """An archive run under the archiver's lock; None when another process holds it."""
    conn = await connect(database_url)
    try:
        if not await conn.fetchval(Q.try_lock):
            return None
        try:
            return await archiver.run(limit=limit, progress=progress)
        finally:
            await conn.fetchval(Q.unlock)
    finally:
        await conn.close()
