"""What every benchmark shares: a scratch database, timing, medians, the report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson

from flowlog.database import (
    NAME_BYTES,
    create_database,
    drop_database,
    put_away_database,
    with_database,
)
from flowlog.migrate import migrate_database

T = TypeVar("T")


BENCH_KEEP_AS = "FLOWLOG_BENCH_KEEP_AS"
"""A prefix: a benchmark's scratch database is then put away under it (renamed, closed to
connections) instead of dropped, for whoever drops it later (docs/benchmarks.md)."""
_KEPT_SUFFIX = 12


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database on the server of ``server_url``, dropped afterwards (or put
    away, with FLOWLOG_BENCH_KEEP_AS).

    Benchmarks never write to flowlog's own database: the log is immutable, so what they
    appended could never be removed.
    """
    name = scratch_name("flowlog_bench")
    await create_database(server_url, name)
    try:
        url = with_database(server_url, name)
        await migrate_database(url)
        yield url
    finally:
        await discard_database(server_url, name)


def scratch_name(prefix: str) -> str:
    """A new scratch database's name (checks FLOWLOG_BENCH_KEEP_AS before it is made)."""
    keep_as()
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


async def discard_database(server_url: str, name: str) -> None:
    """Drops a benchmark's scratch database, or puts it away with FLOWLOG_BENCH_KEEP_AS."""
    prefix = keep_as()
    if prefix is None:
        await drop_database(server_url, name)
    else:
        kept = prefix + secrets.token_hex(_KEPT_SUFFIX // 2)
        await put_away_database(server_url, name, kept)


def keep_as() -> str | None:
    """FLOWLOG_BENCH_KEEP_AS, if set; ValueError for a prefix too long for a database's name
    (checked before a benchmark makes its database, not when it puts it away; the environment
    holds no NUL)."""
    prefix = os.environ.get(BENCH_KEEP_AS) or None
    if prefix is None:
        return None
    if len(prefix.encode()) + _KEPT_SUFFIX > NAME_BYTES:
        raise ValueError(f"{BENCH_KEEP_AS} is too long: a prefix of at most "
                         f"{NAME_BYTES - _KEPT_SUFFIX} bytes")  # fmt: skip
    return prefix


async def timed(workers: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Seconds for ``workers`` concurrent calls of ``work(worker_index)`` to finish."""
    start = time.perf_counter()
    await asyncio.gather(*(work(i) for i in range(workers)))
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0.99: the value 99 % of samples do not exceed)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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


SERVER_START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port nothing listens on now (for a server about to start)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_process(
    database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """A ``flowlog serve`` process on ``database_url`` and a free port, once ready: its base
    URL. ``args`` are more options of ``serve``; ``env`` more environment. SIGTERM at the end.
    """
    async with served(database_url, *args, env=env) as (base, _):
        yield base


@contextlib.asynccontextmanager
async def served(
    database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``serve_process``, with the process itself (its pid, for its CPU and memory)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "FLOWLOG_LOG_LEVEL": "WARNING",
        "FLOWLOG_TOKENS": "",
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowlog.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        *args, env=environment, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await until_ready(base, process)
        yield base, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


class NotReady(RuntimeError):
    """A server process ended, or was not ready in time."""


async def until_ready(
    base: str, process: asyncio.subprocess.Process, within: float = SERVER_START_TIMEOUT
) -> None:
    """Waits until the server at ``base`` answers ``/readyz`` with 200; NotReady when
    ``process`` (what serves it) ends first, or after ``within`` seconds."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(base) as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise NotReady(f"the server's process exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get("/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise NotReady(f"the server was not ready within {within:.0f} s")


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (Linux /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def worker_processes(database_url: str, count: int) -> AsyncIterator[list[int]]:
    """``count`` ``flowlog worker`` processes on ``database_url`` (their pids), stopped with
    SIGTERM at the end."""
    env = {**os.environ, "DATABASE_URL": database_url, "FLOWLOG_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "flowlog.cli", "worker"]
    processes = []
    for _ in range(count):
        processes.append(
            await asyncio.create_subprocess_exec(
                *command, env=env, stdout=asyncio.subprocess.DEVNULL
            )
        )
    try:
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
