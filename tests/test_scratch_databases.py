"""Putting a database away (what the tests do with theirs, and the benchmarks with their scratch
databases under FLOWLOG_BENCH_KEEP_AS): its sessions ended, renamed, closed to connections, and
no DROP DATABASE, which would hold back every reader of the log on the server."""

from __future__ import annotations

import secrets
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest

from flowlog.bench.harness import BENCH_KEEP_AS, scratch_database
from flowlog.database import create_database, put_away_database, with_database
from tests.scratch_databases import retired_prefix

_STATE = "SELECT datallowconn FROM pg_database WHERE datname = $1"


async def _allows(server_url: str, name: str) -> bool | None:
    conn = await asyncpg.connect(server_url)
    try:
        allowed: bool | None = await conn.fetchval(_STATE, name)
        return allowed
    finally:
        await conn.close()


def _retired_name() -> str:
    return f"{retired_prefix()}{secrets.token_hex(6)}"


async def test_a_database_put_away_is_renamed_and_closed_with_its_sessions_ended(
    server_url: str,
) -> None:
    name, kept = f"flowlog_away_{secrets.token_hex(4)}", _retired_name()
    await create_database(server_url, name)
    session = await asyncpg.connect(with_database(server_url, name))
    try:
        await put_away_database(server_url, name, kept)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await session.fetchval("SELECT 1")
    finally:
        session.terminate()
    assert await _allows(server_url, name) is None
    assert await _allows(server_url, kept) is False
    with pytest.raises(asyncpg.PostgresError, match="not currently accepting connections"):
        await asyncpg.connect(with_database(server_url, kept))


async def test_a_database_gone_already_is_put_away_as_if_it_were(server_url: str) -> None:
    gone, kept = f"flowlog_gone_{secrets.token_hex(4)}", _retired_name()
    await put_away_database(server_url, gone, kept)
    assert await _allows(server_url, kept) is None


async def test_a_name_too_long_for_postgresql_changes_nothing(server_url: str) -> None:
    name = f"flowlog_away_{secrets.token_hex(4)}"
    await create_database(server_url, name)
    too_long = _retired_name() + "x" * 40  # PostgreSQL would cut it short without a word
    with pytest.raises(ValueError, match="at most 63 bytes"):
        await put_away_database(server_url, name, too_long)
    assert await _allows(server_url, name) is True
    await put_away_database(server_url, name, _retired_name())


async def test_a_benchmark_puts_its_scratch_database_away_when_asked(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"{retired_prefix()}kept_"
    monkeypatch.setenv(BENCH_KEEP_AS, prefix)
    async with scratch_database(server_url) as url:
        used = unquote(urlsplit(url).path.lstrip("/"))
        assert await _allows(server_url, used) is True
    assert await _allows(server_url, used) is None
    conn = await asyncpg.connect(server_url)
    try:
        kept = await conn.fetch(_KEPT, prefix)
    finally:
        await conn.close()
    assert [r["datallowconn"] for r in kept] == [False]
    monkeypatch.setenv(BENCH_KEEP_AS, "x" * 60)
    with pytest.raises(ValueError, match="FLOWLOG_BENCH_KEEP_AS is too long"):
        async with scratch_database(server_url):
            pytest.fail("made a database it could not put away")


_KEPT = "SELECT datname, datallowconn FROM pg_database WHERE starts_with(datname, $1)"
