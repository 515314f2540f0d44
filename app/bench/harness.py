"""What every benchmark shares: a scratch database, timing, medians, the report."""

from __future__ import annotations

import contextlib
import os
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.database import create_database, drop_database, with_database
from app.migrate import migrate_database


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database on the server of ``server_url``, dropped afterwards.

    Benchmarks never write to flowlog's own database: the log is immutable, so what they
    appended could never be removed.
    """
    name = f"flowlog_bench_{os.getpid()}_{secrets.token_hex(3)}"
    await create_database(server_url, name)
    try:
        url = with_database(server_url, name)
        await migrate_database(url)
        yield url
    finally:
        await drop_database(server_url, name)


async def timed(workers: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Seconds for ``workers`` concurrent calls of ``work(worker_index)`` to finish."""
    import asyncio

    start = time.perf_counter()
    await asyncio.gather(*(work(i) for i in range(workers)))
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass(frozen=True, slots=True)
class Report:
    """A benchmark's figures: a table for people, one JSON object for scripts."""

    name: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    figures: dict[str, Any]
    notes: Sequence[str] = ()

    def print(self, as_json: bool) -> None:
        widths = [
            max(len(str(h)), *(len(_cell(r[i])) for r in self.rows))
            for i, h in enumerate(self.header)
        ]
        print(f"flowlog bench {self.name}")
        print("  ".join(str(h).rjust(w) for h, w in zip(self.header, widths, strict=True)))
        for row in self.rows:
            print("  ".join(_cell(c).rjust(w) for c, w in zip(row, widths, strict=True)))
        for note in self.notes:
            print(note)
        if as_json:
            print(orjson.dumps(self.figures).decode())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)
