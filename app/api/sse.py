"""Long-lived Server-Sent Events answers (a flow's event stream, the console's live notices):
they wait for a commit's notice (the process's LISTEN connection) or the server's shutdown, and
meanwhile send a comment now and then so that proxies keep the idle connection open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from flowlog.api import keys
from flowlog.eventstore import wait_any

KEEPALIVE = 15.0
"""Seconds without a notice after which a stream sends a keep-alive comment."""


@dataclass(frozen=True, slots=True)
class Notices:
    """A stream's notices: ``commits`` is set by each commit's notice (clear it before reading
    what it announces), ``shutting_down`` once the server stops."""

    response: web.StreamResponse
    commits: asyncio.Event
    shutting_down: asyncio.Event

    async def wait(self) -> None:
        """Until a commit's notice or the shutdown, for at most KEEPALIVE seconds; a
        keep-alive comment when neither came."""
        await wait_any([self.commits, self.shutting_down], KEEPALIVE)
        if not (self.commits.is_set() or self.shutting_down.is_set()):
            await self.response.write(b": keep-alive\n\n")


@asynccontextmanager
async def notices(request: web.Request, response: web.StreamResponse) -> AsyncIterator[Notices]:
    """The notices of ``response``'s stream (prepared), heard while the block runs."""
    listener = request.app[keys.ENGINE].listener
    commits = listener.register()
    try:
        yield Notices(response, commits, request.app[keys.SHUTTING_DOWN])
    finally:
        listener.unregister(commits)
