"""Which definition versions the running processes can run, and the flows that await a version
none of them has (docs/operations.md, "Upgrades: stranded flows").

A reactor claims only the versions it registered (a version is a content hash): a deploy that
changes a definition's shape leaves the old version's running flows to no one. Each process
that runs a reactor records its versions in ``process_versions`` (``VersionBeat``), every
``interval`` seconds, counting as running for ``LAPSES`` intervals more (a process killed stops
counting then); its row goes at a clean stop. A flow **awaits a version** when it is not ended,
has pending work that no task queue's worker holds, and no running process has its version.
Statements in sql/queries/versions.sql.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.eventstore.pool import Executor
from flowlog.eventstore.wakeloop import every
from flowlog.sql import load_queries

log = logging.getLogger(__name__)

LAPSES = 3
"""A process stops counting as running this many intervals after it last wrote its row."""
CHECK_SECONDS = 30.0
"""How often an engine looks again at the flows awaiting a version (and logs a change)."""
SHORT = 12
"""Characters of a version shown to people (the full hash is in every JSON answer)."""


@dataclass(frozen=True, slots=True)
class VersionQueries:
    process_versions_beat: str
    process_versions_remove: str
    process_versions_live: str
    awaiting_versions: str
    awaiting_flows: str
    flow_awaiting: str
    running_versions: str


Q = load_queries(VersionQueries, "versions")


@dataclass(frozen=True, slots=True)
class Awaiting:
    """``flows`` flows of ``definition`` await ``version``: no running process has it."""

    definition: str
    version: str
    flows: int

    def describe(self) -> str:
        many = "flow waits" if self.flows == 1 else "flows wait"
        return (
            f"{self.flows} {many} for a process that has version {self.version[:SHORT]} "
            f"of {self.definition}"
        )


@dataclass(frozen=True, slots=True)
class AwaitingFlow:
    flow_id: str
    definition: str
    version: str
    status: str
    biz_id: str
    created_at: datetime


async def awaiting(executor: Executor, tenant: str | None = None) -> list[Awaiting]:
    """The flows awaiting a version, counted by definition and version; ``tenant``'s only
    (None: every tenant's)."""
    rows = await executor.fetch(Q.awaiting_versions, tenant)
    return [Awaiting(row["definition"], row["version"], int(row["flows"])) for row in rows]


async def awaiting_flows(
    executor: Executor, tenant: str | None = None, limit: int = 1000
) -> list[AwaitingFlow]:
    """The flows awaiting a version, oldest first (at most ``limit``)."""
    rows = await executor.fetch(Q.awaiting_flows, tenant, limit)
    return [AwaitingFlow(*row) for row in rows]


async def flow_awaits(executor: Executor, flow_id: str) -> str | None:
    """The version flow ``flow_id`` awaits; None when it awaits none (a running process has
    its version, a worker holds its node, or it has nothing to do)."""
    version: str | None = await executor.fetchval(Q.flow_awaiting, flow_id)
    return version


def describe(found: Sequence[Awaiting]) -> str:
    return "; ".join(entry.describe() for entry in found)


class VersionBeat:
    """This process's row in ``process_versions``: written at ``start`` and every
    ``interval`` seconds with the versions ``versions()`` names (they grow as definitions
    registered over REST are learnt), deleted at ``stop``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        process_id: str,
        versions: Callable[[], list[str]],
        interval: float,
    ) -> None:
        self.pool = pool
        self.process_id = process_id
        self._versions = versions
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._loop(), name="process-versions")

    async def beat(self) -> None:
        await self.pool.execute(
            Q.process_versions_beat, self.process_id, self._versions(), self.interval * LAPSES
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.pool.execute(Q.process_versions_remove, self.process_id)
        except TRANSIENT_ERRORS as exc:  # the row lapses by itself
            log.warning("process versions not removed", extra={"error": repr(exc)})

    async def _loop(self) -> None:
        await every(self.interval, self.beat, "process versions not written", log)


class AwaitingWatch:
    """Looks at the flows awaiting a version every ``interval`` seconds, logs a warning when
    what it finds changes (and once when none is left), and keeps the latest answer."""

    def __init__(self, pool: asyncpg.Pool, interval: float = CHECK_SECONDS) -> None:
        self.pool = pool
        self.interval = interval
        self.last: list[Awaiting] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.check()
        except TRANSIENT_ERRORS as exc:
            log.warning("flows awaiting versions not checked", extra={"error": repr(exc)})
        self._task = asyncio.create_task(self._loop(), name="awaiting-versions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def check(self) -> list[Awaiting]:
        found = await awaiting(self.pool)
        if found != (self.last or []):
            if found:
                log.warning(
                    "flows wait for definition versions no running process has",
                    extra={
                        "definitions": sorted({entry.definition for entry in found}),
                        "versions": [entry.version for entry in found],
                        "counts": [entry.flows for entry in found],
                        "awaiting": describe(found),
                    },
                )
            elif self.last:
                log.info("no flow waits for a definition version any more")
        self.last = found
        return found

    async def _loop(self) -> None:
        await every(self.interval, self.check, "flows awaiting versions not checked", log)
