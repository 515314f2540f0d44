"""Where reads go: to a streaming replica that is up, caught up to within a limit and (when
the reader presents a commit position) has replayed that far; else to the primary.

Writes, claims and the reactor never come here: they use the primary's pool. The router
checks every replica once per interval (how far it has replayed against the primary's WAL
at the same moments, which gives its lag in seconds without trusting either clock) and
skips one that is down, lagging or not a standby of this primary.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from flowlog.eventstore import TRANSIENT_ERRORS, create_pool
from flowlog.replicas.replica import DOWN_ERRORS, Q, Replica, ReplicaState
from flowlog.replicas.settings import ReadSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

REPLICA_CONNECT_TIMEOUT = 2.0
"""A replica that does not accept a connection this fast is treated as down (the primary
answers instead): reads must not hang on a host that went away."""


@dataclass(frozen=True, slots=True)
class Choice:
    """The pool a read uses, and the replica behind it (None: the primary)."""

    pool: asyncpg.Pool
    replica: Replica | None


ReadObserver = Callable[[str, str], None]
"""Called once per routed read: the server (a replica's name, or "primary") and why
("replica"; for the primary: "no_replica", "waited", "replica_failed")."""

PRIMARY = "primary"


class ReadRouter:
    def __init__(
        self,
        primary: asyncpg.Pool,
        settings: ReadSettings | None = None,
        *,
        observe: ReadObserver | None = None,
    ) -> None:
        self.primary = primary
        self.settings = settings or ReadSettings()
        self.replicas: list[Replica] = []
        self._observe = observe
        self._turn = itertools.count()
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._primary_id: int | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._pending: asyncio.Future[int] | None = None
        self._fetching: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.urls)

    async def start(self) -> None:
        if not self.enabled:
            return
        self._primary_id = await self.primary.fetchval(Q.primary_identity)
        for url in self.settings.urls:
            # No connection at start: a replica that is down must not stop the service.
            pool = await create_pool(
                url, min_size=0, max_size=self.settings.pool_size,
                connect_timeout=REPLICA_CONNECT_TIMEOUT,
            )  # fmt: skip
            self.replicas.append(Replica(url, pool))
        await self.check()
        self._monitor = asyncio.create_task(self._watch(), name="replica-monitor")

    async def stop(self) -> None:
        for task in (self._monitor, self._fetching):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._monitor = self._fetching = None
        if self._pending is not None:  # callers waiting for a position that will not come
            self._pending.cancel()
            self._pending = None
        for replica in self.replicas:
            await replica.close()
        self.replicas = []

    # -- positions -------------------------------------------------------------------------

    async def position(self) -> int:
        """The commit position of every write that has returned so far (the primary's WAL
        insert position): present it to read those writes back from a replica."""
        position: int = await self.primary.fetchval(Q.commit_position)
        return position

    async def latest(self) -> int:
        """The primary's position now, one query shared by every caller that asks while
        the last one runs (each gets a position read after it asked: a stream tail woken by
        a NOTIFY, say, then sees the commit that sent it)."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
        waiter = self._pending
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(self._fetch_positions(), name="positions")
        return await asyncio.shield(waiter)

    async def _fetch_positions(self) -> None:
        while self._pending is not None:
            waiter, self._pending = self._pending, None
            try:
                waiter.set_result(await self.position())
            except asyncio.CancelledError:
                waiter.cancel()  # stopping: no caller is left waiting on it
                raise
            except Exception as exc:  # every caller sees the failure as its own
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: callers that went away leave no warning

    # -- routing ---------------------------------------------------------------------------

    async def choose(self, position: int | None = None) -> Choice:
        """The pool for a read that must see ``position`` (None: any recent state)."""
        if not self.replicas:
            return Choice(self.primary, None)
        usable = [r for r in self.replicas if r.usable]
        if not usable:
            return self._on_primary("no_replica")
        start = next(self._turn) % len(usable)
        usable = usable[start:] + usable[:start]
        if position is None:
            return self._on_replica(usable[0])
        for replica in usable:
            if replica.has_replayed(position):
                return self._on_replica(replica)
        if await usable[0].wait_for(position, self.settings.wait):
            return self._on_replica(usable[0])
        return self._on_primary("waited")

    async def fresh(self) -> Choice:
        """A pool that sees every write committed before the call."""
        if not self.replicas:
            return Choice(self.primary, None)
        return await self.choose(await self.latest())

    async def run(self, read: Callable[[asyncpg.Pool], Awaitable[T]], choice: Choice) -> T:
        """``read`` on the chosen pool; if a replica fails under it, again on the primary."""
        try:
            return await read(choice.pool)
        except TRANSIENT_ERRORS as exc:
            if choice.replica is None:
                raise
            fallback = await self.failed(choice.replica, exc)
        return await read(fallback.pool)

    async def failed(self, replica: Replica, exc: BaseException) -> Choice:
        """A read on ``replica`` failed (the server went away, or cancelled the query for a
        conflict with recovery): the replica is checked again before it is used, and the
        read goes to the primary."""
        if isinstance(exc, asyncpg.SerializationError):
            # A recovery conflict cancels one query; the replica itself is fine.
            log.info("read cancelled on a replica", extra={"replica": replica.name})
        else:
            await replica.mark_down(exc)
        return self._on_primary("replica_failed")

    def _on_replica(self, replica: Replica) -> Choice:
        if self._observe is not None:
            self._observe(replica.name, "replica")
        return Choice(replica.pool, replica)

    def _on_primary(self, why: str) -> Choice:
        if self._observe is not None:
            self._observe(PRIMARY, why)
        return Choice(self.primary, None)

    # -- health ----------------------------------------------------------------------------

    async def check(self) -> None:
        """Samples the primary's position, then each replica's state and lag."""
        assert self._primary_id is not None
        try:
            async with asyncio.timeout(2 * self.settings.interval + 1):
                sampled = await self.position()
        except DOWN_ERRORS as exc:
            # Without the primary's position no lag can be told: the replicas keep their
            # state (the primary's own troubles are /readyz's "database" check).
            log.warning("primary position not read", extra={"error": repr(exc)})
            return
        now = time.monotonic()
        self._samples.append((now, sampled))
        keep = max(2 * self.settings.max_lag, 10 * self.settings.interval)
        while self._samples and self._samples[0][0] < now - keep:
            self._samples.popleft()
        replayed = await asyncio.gather(*(r.check(self._primary_id) for r in self.replicas))
        for replica, position in zip(self.replicas, replayed, strict=True):
            if position is None:
                continue
            lag = self.lag(position, now)
            state = ReplicaState.OK if lag <= self.settings.max_lag else ReplicaState.LAGGING
            replica.mark(state, lag, None if state is ReplicaState.OK else f"{lag:.1f} s behind")

    def lag(self, replayed: int, now: float) -> float:
        """How long ago the primary's WAL first went past ``replayed``, by the samples: 0 when
        the replica has everything the primary had at the last sample."""
        for at, sampled in self._samples:
            if sampled > replayed:
                return now - at
        return 0.0

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval)
            try:
                await self.check()
            except Exception:  # the monitor must outlive any one failure
                log.exception("replica check failed")
