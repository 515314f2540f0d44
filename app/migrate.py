"""The migrator: applies sql/migrations in order, once each, one process at a time, as the
owner role; then grants the runtime role what serving needs (docs/eventstore.md)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from flowlog import sql
from flowlog.roles import DatabaseUrls
from flowlog.sql import Migration, load_queries

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MigrationQueries:
    lock: str
    unlock: str
    create_table: str
    applied: str
    record: str
    migrations_table: str
    session_role: str
    grant_runtime: str


Q = load_queries(MigrationQueries, "migrations")


class MigrationError(Exception):
    """The database's recorded migrations disagree with the files shipped."""


def checksum(migration: Migration) -> str:
    return hashlib.sha256(migration.sql.encode()).hexdigest()


def _check_recorded(recorded: Mapping[int, asyncpg.Record], wanted: Sequence[Migration]) -> None:
    """Refuses applied migrations whose files changed since (migrations are forward-only);
    warns of applied ones this flowlog does not know (a newer flowlog migrated)."""
    known = {m.version for m in wanted}
    for version, row in recorded.items():
        if version not in known:
            log.warning(
                "database has a migration this flowlog does not know",
                extra={"version": version, "migration": row["name"]},
            )
    for migration in wanted:
        applied = recorded.get(migration.version)
        if applied is not None and applied["checksum"] != checksum(migration):
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} was changed after it was "
                "applied; add a new migration instead of editing an applied one"
            )


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
        _check_recorded(recorded, wanted)
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


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    """The migrations the database lacks, read without writing (a runtime role can)."""
    wanted = sql.migrations()
    if not await conn.fetchval(Q.migrations_table):
        return wanted
    recorded = {row["version"]: row for row in await conn.fetch(Q.applied)}
    _check_recorded(recorded, wanted)
    return [m for m in wanted if m.version not in recorded]


async def session_role(conn: asyncpg.Connection) -> tuple[str, bool]:
    """The role ``conn`` acts as, and whether it can change the event log."""
    row = await conn.fetchrow(Q.session_role)
    assert row is not None
    return str(row["role"]), bool(row["can_change_log"])


async def migrate_database(dsn: str, *, grant: str | None = None) -> list[int]:
    """Opens a connection to ``dsn``, migrates, grants role ``grant`` the runtime rights
    (unless it is the connection's own role), closes."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
        if grant is not None and grant != (await session_role(conn))[0]:
            await conn.execute(Q.grant_runtime, grant)
        return applied
    finally:
        await conn.close()


async def prepare_schema(urls: DatabaseUrls | str, *, serving: bool = False) -> list[int]:
    """Brings the schema up to date before a command uses it; returns what was applied.

    With an owner URL, migrates as the owner and grants the runtime role (DATABASE_URL's).
    With one URL, migrates only if something is missing (a runtime role may not, and says
    so). Before ``serving``, warns when the role that serves could rewrite the log.
    """
    if isinstance(urls, str):
        urls = DatabaseUrls(urls)
    conn = await asyncpg.connect(urls.url)
    try:
        if urls.owner_url is not None:
            runtime, _ = await session_role(conn)
            applied = await migrate_database(urls.owner_url, grant=runtime)
        elif missing := await pending(conn):
            applied = await _migrate_as_runtime(conn, missing)
        else:
            applied = []
        role, can_change_log = await session_role(conn)
    finally:
        await conn.close()
    if serving and can_change_log:
        log.warning(
            "the role that serves can rewrite the event log; run flowlog with a runtime role "
            "(DATABASE_URL) and an owner role (FLOWLOG_OWNER_URL)",
            extra={"role": role, "see": "docs/eventstore.md#who-can-change-the-log"},
        )
    return applied


async def _migrate_as_runtime(conn: asyncpg.Connection, missing: list[Migration]) -> list[int]:
    try:
        return await migrate(conn)
    except asyncpg.InsufficientPrivilegeError:
        role, _ = await session_role(conn)
        versions = ", ".join(str(m.version) for m in missing)
        raise MigrationError(
            f"the database lacks migrations {versions}, which role {role} may not apply: run "
            "`flowlog migrate` with FLOWLOG_OWNER_URL set to the owner role's URL"
        ) from None
