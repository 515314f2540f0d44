"""Wake-ups across processes: a coalesced NOTIFY after commits, one LISTEN connection per process.

PostgreSQL serialises the commits of transactions that NOTIFY, so a NOTIFY inside every append
would cap the log at the speed of one committer. Appends therefore never notify. After a
commit the store calls ``Notifier.wake()``, which only sets a flag; one background task sends
``pg_notify`` whenever the flag is up, and then rests for ``min_interval`` before the next: an
idle system notifies at once, a busy one at most ``1 / min_interval`` times a second however
many appends commit. Every commit is still followed by a notification sent after it, which is
what a reader needs to see that commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from flowlog.eventstore.errors import TRANSIENT_ERRORS
from flowlog.eventstore.queries import Q

log = logging.getLogger(__name__)

CHANNEL = "flowlog_events"
_RETRYABLE: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *TRANSIENT_ERRORS)
_RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class Notifier:
    """Sends at most one NOTIFY at a time, after any number of ``wake()`` calls."""

    def __init__(
        self, pool: asyncpg.Pool, channel: str = CHANNEL, *, min_interval: float = 0.005
    ) -> None:
        """``min_interval`` bounds the rate of notifications, and so the extra latency of a
        wake-up under load (5 ms: at most 200 notifying commits a second per process)."""
        self._pool = pool
        self._channel = channel
        self._min_interval = min_interval
        self._dirty = asyncio.Event()
        self._in_flight = False
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.senders: set[int] = set()
        """The server processes (backend pids) this notifier has sent from: a listener of
        this process can tell its own notifications from other processes' (``register``)."""
        self.last_send = float("-inf")
        """When (the loop's clock) the latest send began: its notification, and any earlier
        one, tells of commits that ended before then."""

    def wake(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="flowlog-notifier")
            self._task.add_done_callback(_report_crash)

    async def close(self) -> None:
        """Stops the task, sending a last notification if one is owed."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        # Owed: a wake not sent yet, or a send that the cancellation may have cut short.
        if self._dirty.is_set() or self._in_flight:
            self._dirty.clear()
            with contextlib.suppress(*_RETRYABLE):
                await self._send()

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._send()
                failures = 0
                await asyncio.sleep(self._min_interval)
            except _RETRYABLE as exc:
                # Readers still poll, so a lost notification only delays them.
                self._dirty.set()
                delay = _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("notify failed, retrying", extra={"error": str(exc), "delay": delay})
                await asyncio.sleep(delay)

    async def _send(self) -> None:
        self._in_flight = True
        async with self._pool.acquire() as conn:
            self.senders.add(conn.get_server_pid())
            self.last_send = asyncio.get_running_loop().time()
            await conn.execute(Q.notify, self._channel)
        self._in_flight = False
        self.sent += 1


Connect = Callable[[], Awaitable[asyncpg.Connection]]
Skip = Callable[[int], bool]
"""Whether a waiter may skip a notification sent by this server process (its pid)."""


class Listener:
    """One LISTEN connection for the whole process, fanned out to local waiters.

    Each waiter is an ``asyncio.Event`` set on every notification, and also after a
    reconnect (notifications sent while disconnected are lost, so waiters must look).
    """

    def __init__(self, connect: Connect, channel: str = CHANNEL) -> None:
        self._connect = connect
        self._channel = channel
        self._waiters: dict[asyncio.Event, Skip | None] = {}
        self._conn: asyncpg.Connection | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self.received = 0

    def register(self, skip: Skip | None = None) -> asyncio.Event:
        """An event set on every notification, except those that ``skip`` (given the server
        process that sent it) says its waiter knows of already: its own process's commits,
        told locally (``Notifier.senders``; a pid of a closed connection that another
        process's server process takes later costs the waiter only its polling delay)."""
        event = asyncio.Event()
        self._waiters[event] = skip
        return event

    def unregister(self, event: asyncio.Event) -> None:
        self._waiters.pop(event, None)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        await self._listen()

    async def close(self) -> None:
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        if self._conn is not None:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await self._conn.close(timeout=5)
            self._conn = None

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._on_terminated)
        self._conn = conn

    def _on_notify(self, _conn: object, pid: int, *_: object) -> None:
        self.received += 1
        for event, skip in self._waiters.items():
            if skip is None or not skip(pid):
                event.set()

    def _wake_all(self) -> None:
        for event in self._waiters:
            event.set()

    def _on_terminated(self, _conn: object) -> None:
        if self._closing:
            return
        log.warning("LISTEN connection lost, reconnecting")
        self._conn = None
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())
        self._reconnect_task.add_done_callback(_report_crash)

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._listen()
            except _RETRYABLE as exc:
                delay = _RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)]
                attempt += 1
                log.warning("LISTEN reconnect failed", extra={"error": str(exc), "delay": delay})
                await asyncio.sleep(delay)
            else:
                log.info("LISTEN connection restored")
                self._wake_all()
                return


def _report_crash(task: asyncio.Task[None]) -> None:
    """Makes the death of a background task loud: readers fall back to polling, slower."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error(
            "background task died; readers fall back to polling",
            exc_info=error,
            extra={"task": task.get_name()},
        )


async def wait_any(events: Sequence[asyncio.Event], seconds: float | None) -> None:
    """Returns when any of ``events`` is set, or after ``seconds``."""
    if any(event.is_set() for event in events):
        return
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
