"""The migrator: applies sql/migrations in order, once each, one process at a time."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

import sql
from sql import Migration, load_queries

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MigrationQueries:
    lock: str
    unlock: str
    create_table: str
    applied: str
    record: str


Q = load_queries(MigrationQueries, "migrations")


class MigrationError(Exception):
    """The database's recorded migrations disagree with the files shipped."""


def checksum(migration: Migration) -> str:
    return hashlib.sha256(migration.sql.encode()).hexdigest()


async def migrate(
    conn: asyncpg.Connection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Applies every migration not applied yet, each in its own transaction.

    Returns the versions applied by this call. A session advisory lock makes concurrent
    callers wait for each other, so each migration runs exactly once. An applied migration
    whose file has changed since is refused: migrations are forward-only.
    """
    wanted = sql.migrations() if migrations is None else list(migrations)
    await conn.execute(Q.lock)
    try:
        await conn.execute(Q.create_table)
        recorded = {row["version"]: row for row in await conn.fetch(Q.applied)}
        by_version = {m.version: m for m in wanted}
        for version, row in recorded.items():
            known = by_version.get(version)
            if known is None:
                log.warning(
                    "database has a migration this flowlog does not know",
                    extra={"version": version, "migration": row["name"]},
                )
            elif checksum(known) != row["checksum"]:
                raise MigrationError(
                    f"migration {version:04d}_{known.name} was changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
        applied: list[int] = []
        for migration in wanted:
            if migration.version in recorded:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(Q.record, migration.version, migration.name, checksum(migration))
            log.info(
                "migration applied",
                extra={"version": migration.version, "migration": migration.name},
            )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute(Q.unlock)


async def migrate_database(dsn: str) -> list[int]:
    """Opens a connection to ``dsn``, migrates, closes."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
