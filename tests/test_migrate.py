"""The migrator: order, idempotence, concurrency, atomicity, forward-only."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from flowlog import sql
from flowlog.migrate import MigrationError, migrate, migrate_database
from flowlog.sql import Migration

SHIPPED = [m.version for m in sql.migrations()]


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_migrating_twice_applies_everything_once(empty_database_url: str) -> None:
    assert await migrate_database(empty_database_url) == SHIPPED
    assert await migrate_database(empty_database_url) == []
    assert {"events", "subscriptions", "schema_migrations"} <= await _tables(empty_database_url)


async def test_concurrent_migrators_apply_each_migration_exactly_once(
    empty_database_url: str,
) -> None:
    results = await asyncio.gather(*(migrate_database(empty_database_url) for _ in range(5)))

    applied = sorted(v for result in results for v in result)
    assert applied == SHIPPED
    conn = await asyncpg.connect(empty_database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert count == len(SHIPPED)


async def test_a_failing_migration_is_rolled_back_and_not_recorded(
    empty_database_url: str,
) -> None:
    good = Migration(1, "good", "CREATE TABLE good (id int)")
    bad = Migration(2, "bad", "CREATE TABLE half (id int); SELECT * FROM no_such_table")
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await migrate(conn, [good, bad])
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        # The lock was released: another migrator can run at once.
        assert await migrate(conn, [good]) == []
    finally:
        await conn.close()

    assert versions == [1]
    tables = await _tables(empty_database_url)
    assert "good" in tables
    assert "half" not in tables


async def test_an_applied_migration_that_changed_is_refused(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, [Migration(1, "t", "CREATE TABLE t (id int)")])
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(
                conn,
                [
                    Migration(1, "t", "CREATE TABLE t (id bigint)"),
                    Migration(2, "u", "CREATE TABLE u (id int)"),
                ],
            )
    finally:
        await conn.close()
    assert "u" not in await _tables(empty_database_url)


async def test_a_newer_database_is_accepted_with_a_warning(
    empty_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(
            conn,
            [Migration(1, "t", "CREATE TABLE t (id int)"), Migration(2, "u", "SELECT 1")],
        )
        assert await migrate(conn, [Migration(1, "t", "CREATE TABLE t (id int)")]) == []
    finally:
        await conn.close()
    assert "does not know" in caplog.text
