"""A connection for one-off reads (the CLI's history and replay): a replica's once it has
replayed everything committed when the command began, else the primary's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import asyncpg

from flowlog.eventstore import connect
from flowlog.replicas.replica import CHECK_TIMEOUT, DOWN_ERRORS, Q, replica_name

log = logging.getLogger(__name__)


async def reading_connection(
    primary_url: str, replica_urls: Sequence[str], *, wait: float = 1.0
) -> asyncpg.Connection:
    primary = await connect(primary_url)
    if not replica_urls:
        return primary
    try:
        position: int = await primary.fetchval(Q.commit_position)
        for url in replica_urls:
            replica = await _caught_up(url, position, wait)
            if replica is not None:
                await primary.close()
                return replica
    except BaseException:
        await primary.close()
        raise
    return primary


async def _caught_up(url: str, position: int, wait: float) -> asyncpg.Connection | None:
    """A connection to the replica at ``url`` once it has replayed ``position``; None when it
    cannot be reached, is no standby, or is still behind after ``wait`` seconds."""
    name = replica_name(url)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            conn = await connect(url)
    except DOWN_ERRORS as exc:
        log.info("replica not reachable", extra={"replica": name, "error": repr(exc)})
        return None
    deadline = time.monotonic() + wait
    try:
        while True:
            replayed = await conn.fetchval(Q.replayed)
            if replayed is None:
                log.info("replica skipped: not a standby", extra={"replica": name})
                break
            if replayed >= position:
                return conn
            if time.monotonic() >= deadline:
                log.info("replica skipped: behind", extra={"replica": name})
                break
            await asyncio.sleep(0.01)
    except DOWN_ERRORS as exc:
        log.info("replica not reachable", extra={"replica": name, "error": repr(exc)})
    await conn.close()
    return None


async def until_replayed(primary_url: str, replica_url: str) -> None:
    """Returns once the replica has replayed everything committed on the primary so far
    (and has the primary's database: a database created just now may not be there yet).
    For tests and benchmarks that set a replica up; bound it with ``asyncio.timeout``."""
    primary = await connect(primary_url)
    try:
        position: int = await primary.fetchval(Q.commit_position)
    finally:
        await primary.close()
    while True:
        with contextlib.suppress(asyncpg.InvalidCatalogNameError):
            replica = await connect(replica_url)
            try:
                replayed = await replica.fetchval(Q.replayed)
            finally:
                await replica.close()
            if replayed is not None and replayed >= position:
                return
        await asyncio.sleep(0.02)
