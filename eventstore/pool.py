"""Connections to the event store's database: one pool per process, JSON through orjson."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from flowlog.eventstore.statements import watch

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one borrowed from the pool: both run statements alike."""
Executor = Connection | asyncpg.Pool
"""Anything that runs a statement: a connection, or the pool (which borrows one)."""

# asyncpg's binary jsonb format is the text preceded by a version byte.
_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Installs the orjson codecs (and the statement counter, when on); every connection
    flowlog opens goes through this."""
    watch(conn)
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )
    await conn.set_type_codec(
        "json", schema="pg_catalog", encoder=_encode_json, decoder=orjson.loads, format="text"
    )


async def _keep_session(conn: Connection) -> None:
    """Releases a connection to the pool without the reset query.

    asyncpg's default reset (``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL``) is one more round trip per borrow: it cost a third of append throughput in
    the benchmark. asyncpg still rolls back a transaction left open and drops listeners. The
    reset query also noticed connections the server cut in the middle of a statement; without
    it such a connection fails once more on its next use (InternalClientError, counted among
    TRANSIENT_ERRORS, so callers retry) and is discarded then.
    The contract that makes this safe, as with a transaction-pooling proxy: nothing leaves
    session state on a pooled connection (use SET LOCAL and transaction-scoped advisory
    locks; LISTEN and session locks take a connection of their own, see ``connect``).
    """


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: float = 60.0
) -> asyncpg.Pool:
    """A pool whose connections speak JSON with orjson and skip the reset on release."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_keep_session,
        timeout=connect_timeout,
    )
    assert pool is not None  # create_pool only returns None when not awaited
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection outside the pool (LISTEN, migrations, administration)."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn
