"""Webhook delivery in one process: the fan-out (every subscription's cursor, woken by the
log's notifications) and the sender (woken by the fan-out, and every second for retries),
reloading the subscriptions when one changes (channel ``flowlog_webhooks``) and every few
seconds. Started by the engine after its reactor, stopped before it."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from flowlog.eventstore import EventStore, Listener
from flowlog.eventstore.errors import TRANSIENT_ERRORS
from flowlog.eventstore.notify import Connect
from flowlog.eventstore.wakeloop import wake_or_poll
from flowlog.webhooks.fanout import FanOut
from flowlog.webhooks.sender import DeliveryCounts, DeliveryTuning, Sender
from flowlog.webhooks.settings import WebhookSettings
from flowlog.workflow.callbacks import CallbackTokens

log = logging.getLogger(__name__)

CHANNEL = "flowlog_webhooks"
"""NOTIFYed (payload: the subscription's id) after a subscription is made or changed."""
RELOAD_SECONDS = 5.0
"""Subscriptions are read again at least this often (a lost notification)."""
POLL_SECONDS = 1.0
"""The fan-out looks at the log at least this often (a notification lost)."""
HELD_BACK_SECONDS = 0.02


class Deliveries:
    def __init__(
        self,
        store: EventStore,
        tokens: CallbackTokens,
        events: Listener,
        connect: Connect,
        settings: WebhookSettings,
        owner: str,
        tuning: DeliveryTuning | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._changes = Listener(connect, CHANNEL)
        self.sender = Sender(store.pool, settings, tokens, owner, tuning or DeliveryTuning())
        self.fanout = FanOut(store, self.sender.poke)
        self._wake = asyncio.Event()
        self._reload = True
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def counts(self) -> DeliveryCounts:
        return self.sender.counts

    def changed(self) -> None:
        """A subscription was made or changed here: read them again now."""
        self._reload = True
        self._wake.set()

    async def start(self) -> None:
        await self._changes.start()
        await self.sender.start()
        self._tasks = [
            asyncio.create_task(self._fan_out(), name="webhook-fanout"),
            asyncio.create_task(self._follow_changes(), name="webhook-changes"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.sender.stop()
        await self._changes.close()

    async def _follow_changes(self) -> None:
        changed = self._changes.register()
        try:
            while True:
                await changed.wait()
                changed.clear()
                self.changed()
        finally:
            self._changes.unregister(changed)

    async def _fan_out(self) -> None:
        loop = asyncio.get_running_loop()
        reload_at = 0.0

        async def one_pass() -> float:
            nonlocal reload_at
            if self._reload or loop.time() >= reload_at:
                self._reload = False
                await self.fanout.reload()
                reload_at = loop.time() + RELOAD_SECONDS
            held_back = await self.fanout.run()
            return HELD_BACK_SECONDS if held_back else POLL_SECONDS

        await wake_or_poll(
            one_pass, wake=self._wake, listener=self._events, stopping=lambda: self._stopping,
            failed=self._failed, retry_on=(*TRANSIENT_ERRORS, asyncpg.PostgresError),
            retry_max=1.0,
        )  # fmt: skip

    def _failed(self, exc: BaseException, delay: float) -> None:
        self._reload = True
        log.warning("webhook fan-out failed, retrying", extra={"error": repr(exc), "delay": delay})
