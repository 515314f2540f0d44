"""The senders: every process with a reactor delivers. A sender leases due lanes (one per
subscription and flow: ``FOR UPDATE SKIP LOCKED``, renewed while it works), and delivers each
lane's pending rows one at a time in the flow's order, many lanes at once. A lease that
lapses (a process killed mid-delivery) makes the lane due for another sender, which sends
the same event again with the same ``webhook-id``: at least once, duplicates recognisable.

Nothing a receiver does (a huge, slow or garbled answer, a reset, a redirect) ends the loop:
it is an attempt that failed, retried with backoff until the subscription's retry window is
over, then dead-lettered, and the lane goes on to its next row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import aiohttp
import asyncpg

from flowlog.eventstore.errors import TRANSIENT_ERRORS
from flowlog.eventstore.wakeloop import every, wake_or_poll
from flowlog.webhooks import payload, signing
from flowlog.webhooks.backoff import retry_delay
from flowlog.webhooks.outcomes import Outcomes
from flowlog.webhooks.queries import Q
from flowlog.webhooks.settings import WebhookSettings
from flowlog.webhooks.urls import BadWebhookUrl, GuardedResolver, check_url
from flowlog.workflow.callbacks import CallbackTokens

log = logging.getLogger(__name__)

_DATABASE_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, asyncpg.PostgresError)

REPORT_SECONDS = 1.0
"""How often a sender adds what it saw to the subscriptions' status."""
ANSWER_KEPT = 1024
"""The first characters of a receiver's answer kept with a failed delivery (escaped where
shown)."""


@dataclass(frozen=True, slots=True)
class DeliveryTuning:
    lease_seconds: float = 30.0
    lanes: int = 64
    """Lanes delivered at once by one process."""
    rows: int = 50
    """A lane's pending rows read at a time."""
    poll_seconds: float = 1.0
    """The longest a due retry waits for a sender to look."""
    first_retry: float = 1.0
    max_retry: float = 3600.0
    linger_seconds: float = 0.25
    """How long a lane with nothing left stays leased for its flow's next events (enqueued
    by this process's fan-out, which says so): a flow's events come in bursts, and a lane
    given up and taken again costs five statements."""
    lingering: int = 1024
    """Lanes that linger at most (they hold no slot of ``lanes``)."""


@dataclass(slots=True)
class DeliveryCounts:
    """What this process's sender did (the metrics' counter reads it)."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class Lane:
    webhook_id: str
    stream_id: str
    url: str
    secret_version: int


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status: int | None
    answer: str | None


def answer_text(raw: bytes | str) -> str:
    """A receiver's answer as it is kept: the first KB, decoded, without NUL (PostgreSQL's
    text cannot hold it)."""
    if isinstance(raw, str):  # an error's text: no lone surrogates either
        raw = raw.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")[:ANSWER_KEPT].replace("\x00", "\ufffd")


@dataclass
class Sender:
    pool: asyncpg.Pool
    settings: WebhookSettings
    tokens: CallbackTokens
    owner: str
    tuning: DeliveryTuning = field(default_factory=DeliveryTuning)
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)
    outcomes: Outcomes = field(default_factory=Outcomes)

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False
        self._driving: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._lingering: dict[tuple[str, str], asyncio.Event] = {}
        self._poked: set[tuple[str, str]] = set()
        """Driven lanes poked since they last read their rows: rows may have come after that
        read, and such a lane must read again rather than linger for a poke already gone."""
        self._keys: dict[tuple[str, int], bytes] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def poke(self, webhook_id: str | None = None, streams: Iterable[str] = ()) -> None:
        """New rows were enqueued (for these flows of ``webhook_id``): lanes lingering here
        go on, and due lanes are looked for now."""
        for stream in streams:
            key = (webhook_id or "", stream)
            lingering = self._lingering.get(key)
            if lingering is not None:
                lingering.set()
            elif key in self._driving:
                self._poked.add(key)
        self._wake.set()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.settings.allow),
                                         limit=self.tuning.lanes, force_close=False)  # fmt: skip
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            # Answers are kept as sent, never inflated: a compressed answer could be a bomb.
            auto_decompress=False,
            headers={"user-agent": "flowlog-webhooks", "accept-encoding": "identity"},
        )  # fmt: skip
        self._tasks = [
            asyncio.create_task(self._loop(), name="webhook-sender"),
            asyncio.create_task(
                every(self.tuning.lease_seconds / 3, self._renew, "webhook lease renewal failed",
                      log), name="webhook-leases",
            ),
            asyncio.create_task(
                every(REPORT_SECONDS, self._report, "webhook status report failed", log),
                name="webhook-status",
            ),
        ]  # fmt: skip

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in [*self._tasks, *self._driving.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._driving.values(), return_exceptions=True)
        self._tasks, self._driving = [], {}
        try:  # another sender takes the lanes at once, not after the lease
            await self.pool.execute(Q.release, self.owner)
            await self._report()
        except _DATABASE_ERRORS as exc:
            log.warning("webhook leases not released", extra={"error": repr(exc)})
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        await wake_or_poll(
            self._pass, wake=self._wake, listener=None, stopping=lambda: self._stopping,
            failed=self._failed, retry_on=_DATABASE_ERRORS,
            retry_max=self.tuning.poll_seconds,
        )  # fmt: skip

    def _failed(self, exc: BaseException, delay: float) -> None:
        log.warning("webhook sender pass failed, retrying",
                    extra={"error": repr(exc), "delay": delay})  # fmt: skip

    async def _pass(self) -> float | None:
        free = self.tuning.lanes - len(self._driving) + len(self._lingering)
        if free <= 0:
            return None  # a lane that ends wakes the loop
        rows = await self.pool.fetch(Q.claim, self.owner, self.tuning.lease_seconds, free)
        for row in rows:
            lane = Lane(row["webhook_id"], row["stream_id"], row["url"], row["secret_version"])
            key = (lane.webhook_id, lane.stream_id)
            task = asyncio.create_task(self._drive(lane), name=f"webhook-lane-{key}")
            self._driving[key] = task
            task.add_done_callback(partial(self._ended, key))
        if len(rows) == free:
            return 0.0
        due = await self.pool.fetchval(Q.next_due)
        if due is None:
            return self.tuning.poll_seconds
        return min(max(float(due), 0.0), self.tuning.poll_seconds)

    def _ended(self, key: tuple[str, str], _task: asyncio.Task[None]) -> None:
        self._driving.pop(key, None)
        self._poked.discard(key)
        self._wake.set()

    async def _renew(self) -> None:
        if not self._driving:
            return
        held = list(self._driving)
        await self.pool.execute(Q.renew, self.owner, [k[0] for k in held],
                                [k[1] for k in held], self.tuning.lease_seconds)  # fmt: skip

    async def _drive(self, lane: Lane) -> None:
        """Delivers the lane's rows in order until it is empty, waits for a retry, or is lost;
        a database failure leaves the lane to its lease (it is delivered again later)."""
        try:
            while not self._stopping:
                self._poked.discard((lane.webhook_id, lane.stream_id))
                rows = await self.pool.fetch(Q.next_rows, lane.webhook_id, lane.stream_id,
                                             self.tuning.rows)  # fmt: skip
                if not rows:
                    if await self._linger(lane):
                        continue
                    await self._finish(lane)
                    return
                if not await self._deliver_rows(lane, rows):
                    return
        except _DATABASE_ERRORS as exc:
            extra = {"webhook": lane.webhook_id, "stream": lane.stream_id, "error": repr(exc)}
            log.warning("webhook lane left to its lease", extra=extra)

    async def _linger(self, lane: Lane) -> bool:
        """Whether rows came for the lane (from this process's fan-out) within the linger."""
        key = (lane.webhook_id, lane.stream_id)
        if key in self._poked:  # rows came while it read: read again (else 250 ms lost)
            return True
        if len(self._lingering) >= self.tuning.lingering or self.tuning.linger_seconds <= 0:
            return False
        came = self._lingering[key] = asyncio.Event()
        self._wake.set()  # its slot is free while it lingers
        try:
            await asyncio.wait_for(came.wait(), self.tuning.linger_seconds)
        except TimeoutError:
            return False
        finally:
            del self._lingering[key]
        return True

    async def _finish(self, lane: Lane) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(Q.lock_lane, lane.webhook_id, lane.stream_id, self.owner):
                await conn.execute(Q.finish, lane.webhook_id, lane.stream_id, self.owner)

    async def _deliver_rows(self, lane: Lane, rows: Sequence[asyncpg.Record]) -> bool:
        """Delivers ``rows`` in order; whether the lane goes on. The successes are written
        together, before a failure and at the end: a sender lost in between leaves them to be
        sent again (at least once, the same ``webhook-id``)."""
        done: list[int] = []
        status: int | None = None
        for row in rows:
            attempt = await self._attempt(lane, row)
            if attempt.ok:
                done.append(row["position"])
                status = attempt.status
                continue
            if done and not await self._delivered(lane, done, status):
                return False
            done = []
            if row["data"] is None or row["created"] is None:  # archived away: dead at once
                window, delay = 0.0, 0.0
            else:
                window = self.settings.retry_seconds
                delay = retry_delay(row["attempts"] + 1, first=self.tuning.first_retry,
                                    cap=self.tuning.max_retry)  # fmt: skip
            if not await self._record_failure(lane, row["position"], attempt, window, delay):
                return False
        return not done or await self._delivered(lane, done, status)

    async def _delivered(self, lane: Lane, positions: list[int], status: int | None) -> bool:
        gone = await self.pool.execute(Q.delivered, lane.webhook_id, positions, self.owner)
        self.counts.delivered += len(positions)
        self.outcomes.delivered(lane.webhook_id, len(positions), status)
        return gone == f"DELETE {len(positions)}"  # else the lane is another sender's now

    async def _attempt(self, lane: Lane, row: asyncpg.Record) -> Attempt:
        position = row["position"]
        if row["data"] is None or row["created"] is None:
            return Attempt(False, None, "the event is no longer in the log (archived)")
        key = await self._key(lane.webhook_id, lane.secret_version)
        content = payload.body(
            position=position, stream_id=lane.stream_id, version=row["version"],
            event_type=row["event_type"], data=row["data"], metadata=row["metadata"],
            recorded_at=row["recorded_at"], created=row["created"], status=row["flow_status"],
        )  # fmt: skip
        msg_id = signing.message_id(lane.webhook_id, position)
        headers = signing.headers(key, msg_id, int(time.time()), content)
        return await self._post(lane.url, headers, content)

    async def _record_failure(
        self, lane: Lane, position: int, attempt: Attempt, window: float, delay: float
    ) -> bool:
        dead = await self.pool.fetchval(Q.failed, lane.webhook_id, position, self.owner,
                                        attempt.status, attempt.answer, window, delay)  # fmt: skip
        self.counts.failed += 1
        self.outcomes.failed(lane.webhook_id, attempt.status, attempt.answer, bool(dead))
        extra = {"webhook": lane.webhook_id, "position": position, "stream": lane.stream_id,
                 "status": attempt.status, "answer": (attempt.answer or "")[:200]}  # fmt: skip
        if dead:
            self.counts.dead += 1
            log.warning("webhook delivery dead-lettered", extra=extra)
            return True
        log.info("webhook delivery failed", extra={**extra, "retry_in": delay})
        return False  # released until the retry (or no longer this sender's: dead is None)

    async def _report(self) -> None:
        await self.outcomes.report(self.pool)

    async def _key(self, webhook_id: str, secret_version: int) -> bytes:
        cached = self._keys.get((webhook_id, secret_version))
        if cached is None:
            message = signing.secret_message(webhook_id, secret_version)
            cached = self._keys[(webhook_id, secret_version)] = await self.tokens.mac(message)
        return cached

    async def _post(self, url: str, headers: dict[str, str], content: bytes) -> Attempt:
        assert self._session is not None
        try:
            # An address written in the URL meets no resolver: it is checked here, every
            # time (the allow list may have changed since the subscription was made).
            check_url(url, self.settings.allow)
            async with self._session.post(url, data=content, headers=headers,
                                          allow_redirects=False) as response:  # fmt: skip
                answer = await _read_at_most(response, self.settings.max_answer)
                return Attempt(200 <= response.status < 300, response.status,
                               answer_text(answer))  # fmt: skip
        except BadWebhookUrl as exc:
            return Attempt(False, None, answer_text(f"refused: {exc}"))
        except TimeoutError:
            return Attempt(False, None, f"no answer within {self.settings.timeout:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever a receiver does is a failed attempt, never a crash
            return Attempt(False, None, answer_text(f"{type(exc).__name__}: {exc}"))


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the answer; the rest is never read (the connection is
    closed rather than drained)."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        part = await response.content.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
