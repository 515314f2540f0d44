"""Long-lived Server-Sent Events answers (a flow's event stream, the console's live notices):
they wait for a commit's notice (the process's LISTEN connection), the server's shutdown or the
revocation of the caller's key, and meanwhile send a comment now and then so that proxies keep
the idle connection open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from flowlog.api import keys
from flowlog.api.context import context_of
from flowlog.eventstore import wait_any

KEEPALIVE = 15.0
"""Seconds without a notice after which a stream sends a keep-alive comment."""


@dataclass(slots=True)
class Notices:
    """A stream's notices: ``commits`` is set by each commit's notice (clear it before reading
    what it announces); the stream is ``over`` once the server stops or its caller's key is
    revoked (``keys_changed`` is set when the keys are reloaded)."""

    response: web.StreamResponse
    commits: asyncio.Event
    shutting_down: asyncio.Event
    keys_changed: asyncio.Event
    still_allowed: Callable[[], bool]
    revoked: bool = False

    @property
    def over(self) -> bool:
        if self.keys_changed.is_set():
            self.keys_changed.clear()
            self.revoked = self.revoked or not self.still_allowed()
        return self.shutting_down.is_set() or self.revoked

    async def wait(self) -> None:
        """Until a commit's notice, the shutdown or a change of keys, for at most KEEPALIVE
        seconds; a keep-alive comment when none came."""
        await wait_any([self.commits, self.shutting_down, self.keys_changed], KEEPALIVE)
        if not (self.commits.is_set() or self.over):
            await self.response.write(b": keep-alive\n\n")


@asynccontextmanager
async def notices(request: web.Request, response: web.StreamResponse) -> AsyncIterator[Notices]:
    """The notices of ``response``'s stream (prepared), heard while the block runs."""
    listener = request.app[keys.ENGINE].listener
    ring = request.app[keys.ACCESS]
    identity = context_of(request).identity
    commits = listener.register()
    changed = ring.watch()

    def still_allowed() -> bool:
        return identity is None or ring.current(identity)

    try:
        yield Notices(response, commits, request.app[keys.SHUTTING_DOWN], changed, still_allowed)
    finally:
        listener.unregister(commits)
        ring.unwatch(changed)
