"""The loop of a background worker woken by notifications: run a pass, then wait for a wake-up.

The reactor's claim loop, the scheduler and every subscription run the same loop: listen on
the process's ``Listener``, run one pass of their work, back off on a failure, and wait for a
notification, a local wake-up or the time the pass asked for. Polling covers what a lost
notification would miss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from flowlog.eventstore.notify import Listener, Skip, wait_any

Pass = Callable[[], Awaitable[float | None]]
"""One pass of a worker's work; returns the seconds to wait before the next pass, at most:
0 (or less) for at once, None for until woken."""

Failed = Callable[[BaseException, float], None]
"""Told of a pass that failed and of the seconds until the next (the caller logs it)."""


async def wake_or_poll(
    one_pass: Pass,
    *,
    wake: asyncio.Event,
    listener: Listener | None,
    stopping: Callable[[], bool],
    failed: Failed,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    retry_base: float = 0.05,
    retry_max: float = 5.0,
    notified_ends_backoff: bool = True,
    skip: Skip | None = None,
) -> None:
    """Runs ``one_pass`` until ``stopping()``; between passes, waits until ``wake`` is set, a
    notification arrives (when a ``listener`` is given) or the pass's wait is over.

    The events are cleared before each pass: a wake-up during a pass runs the next at once.
    A pass that raises one of ``retry_on`` is retried after ``retry_base * 2**failures``
    seconds (at most ``retry_max``), ``failures`` counting the failures in a row; anything else
    ends the loop. ``notified_ends_backoff``: a notification cuts that wait short too (else
    only ``wake`` does). ``skip``: the notifications that do not wake it
    (``Listener.register``). Whoever sets ``stopping`` sets ``wake`` too, so that a wait
    ends."""
    notified = listener.register(skip) if listener is not None else None
    woken: Sequence[asyncio.Event] = [wake] if notified is None else [wake, notified]
    backing_off = woken if notified_ends_backoff else [wake]
    failures = 0
    try:
        while not stopping():
            wake.clear()
            if notified is not None:
                notified.clear()  # before the pass: a notification during the pass counts
            try:
                wait = await one_pass()
                failures = 0
                events = woken
            except retry_on as exc:  # the loop must outlive any one failure
                failures += 1
                wait = min(retry_max, retry_base * 2**failures)
                failed(exc, wait)
                events = backing_off
            if wait is None or wait > 0:
                await wait_any(events, wait)
    finally:
        if notified is not None and listener is not None:
            listener.unregister(notified)


async def every(seconds: float, work: Callable[[], Awaitable[object]], failed: str,
                logger: logging.Logger) -> None:  # fmt: skip
    """Runs ``work`` every ``seconds``, for ever (until cancelled); a failure is logged as
    ``failed`` and the next run comes as usual."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except Exception as exc:  # the loop must outlive any one failure
            logger.warning(failed, extra={"error": repr(exc)})
