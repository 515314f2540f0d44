"""The tests' databases: copies of the migrated template, made one ahead and dropped in batches.

PostgreSQL 15's DROP DATABASE waits for an immediate checkpoint. Dropped one by one as each
test ended, the drops took about 2 s apiece on the CI machine (more than most tests), and they
queued behind each other's checkpoints. Dropped together, one checkpoint serves the batch:
six concurrent drops took 1.5 s where six in a row took 12. So a test hands its database back
and goes on; a thread of this xdist worker drops what was handed back, a batch at a time, and
meanwhile makes the next test's copy of the template.

Each drop holds a connection while it runs, and the server allows 100 for every worker's tests
(the fifty writers' test alone takes 50): so a batch is four, and a batch waits for the one
before it. A worker holds at most five connections of its own (four drops and one copy).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from flowlog.database import create_database, drop_database

T = TypeVar("T")

DROP_BATCH = 4
"""Databases handed back before they are dropped together (four concurrent drops still share
one checkpoint: 0.03-0.09 s against 0.2 s for four in a row)."""


class ScratchDatabases:
    def __init__(self, server_url: str, template: str | None, prefix: str) -> None:
        self._server_url = server_url
        self._template = template
        self._prefix = prefix
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"{prefix}-databases", daemon=True
        )
        self._thread.start()
        self._next: Future[str] | None = None
        self._handed_back: list[str] = []
        self._drops: list[Future[None]] = []

    def take(self) -> str:
        """The name of a new database (a copy of the template, or empty without one)."""
        made = self._next or self._submit(self._create())
        if self._template is not None:
            # The next test's copy is made while this one runs.
            self._next = self._submit(self._create())
        return made.result()

    def hand_back(self, name: str) -> None:
        """The test is done with ``name``: it is dropped with the next batch."""
        self._handed_back.append(name)
        if len(self._handed_back) >= DROP_BATCH:
            self._drop_handed_back()

    def close(self) -> None:
        """Drops every database this worker made and waits until they are gone; a drop that
        failed is raised here, at the end of the session."""
        if self._next is not None:
            self._handed_back.append(self._next.result())
            self._next = None
        self._drop_handed_back()
        try:
            for drop in self._drops:
                drop.result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def _drop_handed_back(self) -> None:
        names, self._handed_back = self._handed_back, []
        if names:
            before = self._drops[-1] if self._drops else None
            self._drops.append(self._submit(self._drop_all(names, after=before)))

    def _submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    async def _create(self) -> str:
        name = f"{self._prefix}_{secrets.token_hex(6)}"
        await create_database(self._server_url, name, template=self._template)
        return name

    async def _drop_all(self, names: list[str], after: Future[None] | None) -> None:
        if after is not None:
            # One batch at a time; the one before failing is raised by close(), not here.
            await asyncio.gather(asyncio.wrap_future(after), return_exceptions=True)
        await asyncio.gather(*(drop_database(self._server_url, name) for name in names))
