"""One streaming replica as a reader sees it: whether to use it, how far it has replayed, and
a shared wait for it to replay a position (one poll for all the requests that wait)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import asyncpg

from flowlog.eventstore import TRANSIENT_ERRORS
from flowlog.sql import load_queries

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0
"""How long a status query may take before the replica counts as down."""
DOWN_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, TimeoutError)
"""What a query on a replica that went away (or stopped answering) fails with."""
_CHECK_ERRORS: tuple[type[BaseException], ...] = (*DOWN_ERRORS, asyncpg.PostgresError)
_FIRST_POLL, _LAST_POLL = 0.002, 0.02
"""A waited-for position is polled for at growing intervals, from the first to the last."""


@dataclass(frozen=True, slots=True)
class ReplicaQueries:
    commit_position: str
    primary_identity: str
    replica_status: str
    replayed: str


Q = load_queries(ReplicaQueries, "replicas")


class ReplicaState(StrEnum):
    UNKNOWN = "unknown"
    """Not checked yet: not used."""
    OK = "ok"
    LAGGING = "lagging"
    """Behind the primary by more than the limit: skipped until it catches up."""
    DOWN = "down"
    FOREIGN = "foreign"
    """Not a standby of this primary (promoted, or another cluster): never used."""


def replica_name(url: str) -> str:
    """How logs, metrics and /readyz name a replica: host, port and database, no password."""
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    host = parts.hostname or query.get("host", "")
    port = parts.port or query.get("port", "5432")
    return f"{host}:{port}{parts.path or '/'}"


class Replica:
    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.name = replica_name(url)
        self.pool = pool
        self.state = ReplicaState.UNKNOWN
        self.replayed = 0
        """The WAL position it has replayed, as last seen (it only grows)."""
        self.lag_seconds: float | None = None
        self.error: str | None = None
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._poller: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.state is ReplicaState.OK

    def has_replayed(self, position: int) -> bool:
        return self.replayed >= position

    async def wait_for(self, position: int, seconds: float) -> bool:
        """Whether the replica replays ``position`` within ``seconds`` (False at once if it
        is not usable)."""
        if self.has_replayed(position):
            return True
        if not self.usable or seconds <= 0:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((position, waiter))
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name=f"replica-wait {self.name}")
        try:
            return await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            return False

    def advance(self, replayed: int) -> None:
        self.replayed = max(self.replayed, replayed)
        waiting, self._waiters = self._waiters, []
        for position, waiter in waiting:
            if waiter.done():
                continue
            if position <= self.replayed:
                waiter.set_result(True)
            else:
                self._waiters.append((position, waiter))

    async def mark_down(self, error: BaseException | str) -> None:
        if self.state is not ReplicaState.DOWN:
            log.warning("replica down", extra={"replica": self.name, "error": str(error)})
        self.state = ReplicaState.DOWN
        self.error = str(error) or type(error).__name__
        self.lag_seconds = None
        # Its pooled connections died with it: the next acquire opens new ones.
        await self.pool.expire_connections()
        self._give_up_waiting()

    def mark(self, state: ReplicaState, lag_seconds: float | None, error: str | None) -> None:
        if state is not self.state and state is not ReplicaState.OK:
            log.warning(
                "replica not used",
                extra={"replica": self.name, "state": str(state), "error": error},
            )
        elif state is not self.state:
            log.info("replica in use", extra={"replica": self.name})
        self.state, self.lag_seconds, self.error = state, lag_seconds, error
        if state is not ReplicaState.OK:
            self._give_up_waiting()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        self._give_up_waiting()
        await self.pool.close()

    def _give_up_waiting(self) -> None:
        waiting, self._waiters = self._waiters, []
        for _, waiter in waiting:
            if not waiter.done():
                waiter.set_result(False)

    async def _poll(self) -> None:
        delay = _FIRST_POLL
        while self._waiters:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    replayed = await self.pool.fetchval(Q.replayed)
            except DOWN_ERRORS as exc:
                await self.mark_down(exc)
                return
            if replayed is None:  # promoted while we waited: no longer a standby
                self.mark(ReplicaState.FOREIGN, None, "not in recovery")
                return
            self.advance(replayed)
            if not self._waiters:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LAST_POLL)

    async def check(self, primary_id: int) -> int | None:
        """Reads the replica's status (marking it down if it does not answer in time):
        returns how far it has replayed, or None when it is not usable as a replica."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                row = await self.pool.fetchrow(Q.replica_status)
        except _CHECK_ERRORS as exc:
            await self.mark_down(exc)
            return None
        assert row is not None
        if not row["standby"]:
            self.mark(ReplicaState.FOREIGN, None, "not in recovery: not a standby")
            return None
        if row["system_identifier"] != primary_id:
            self.mark(ReplicaState.FOREIGN, None, "a standby of another cluster")
            return None
        replayed: int = row["replayed"]  # not NULL: a standby has replayed from somewhere
        self.advance(replayed)
        return replayed
