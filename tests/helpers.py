"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterable

from eventstore import EventStore, RecordedEvent


async def wait_readable(
    store: EventStore, positions: Iterable[int], within: float = 30
) -> list[RecordedEvent]:
    """Waits until the events at ``positions`` can be read from the log; returns the log.

    The read horizon is the xmin of the whole cluster: a transaction open in another test's
    database (tests run in parallel on one server) holds back even events committed here.
    """
    wanted = set(positions)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        log = await store.read_all(limit=1_000_000)
        missing = wanted - {e.position for e in log}
        if not missing:
            return log
        assert loop.time() < deadline, f"events {sorted(missing)} never became readable"
        await asyncio.sleep(0.01)


QUIET = {"FLOWLOG_LOG_LEVEL": "WARNING"}


def cli_env(**overrides: str) -> dict[str, str]:
    """This process's environment without its DATABASE_URL, with ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(overrides)
    return env


def run_flowlog(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``flowlog ARGS`` as a user runs it: a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
