"""Which PostgreSQL flowlog uses: DATABASE_URL when set, else an embedded server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from flowlog.config import ConfigError, Settings
from flowlog.pgserver import EmbeddedPostgres
from flowlog.roles import DatabaseUrls

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "flowlog"
EMBEDDED_RUNTIME_ROLE = "flowlog"


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted (for the statements that take no parameters: CREATE DATABASE)."""
    if not name or "\0" in name:
        raise ValueError(f"not a valid identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database of the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


async def create_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        statement = f"CREATE DATABASE {quote_ident(name)}"
        if template is not None:
            statement += f" TEMPLATE {quote_ident(template)}"
        await conn.execute(statement)
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


NAME_BYTES = 63
"""PostgreSQL's longest identifier (a longer one is cut short, silently)."""
_END_SESSIONS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()
"""


async def put_away_database(admin_url: str, name: str, new_name: str, within: float = 30.0) -> None:
    """Takes database ``name`` out of use without dropping it: its sessions ended, renamed to
    ``new_name``, closed to connections (autovacuum leaves it alone too). Milliseconds, where a
    DROP DATABASE waits for a checkpoint holding a transaction id, which holds back the
    readers of every flowlog database of the server meanwhile (docs/eventstore.md): the drop
    can wait for a quiet moment."""
    if len(new_name.encode()) > NAME_BYTES:
        raise ValueError(f"a database name has at most {NAME_BYTES} bytes: {new_name!r}")
    conn = await asyncpg.connect(admin_url)
    try:
        # Closed first: a client that reconnects cannot come back between the two below.
        try:
            await conn.execute(f"ALTER DATABASE {quote_ident(name)} WITH ALLOW_CONNECTIONS false")
        except asyncpg.InvalidCatalogNameError:
            return  # gone already, as DROP DATABASE IF EXISTS would take it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            await conn.fetchval(_END_SESSIONS, name)
            try:
                await conn.execute(
                    f"ALTER DATABASE {quote_ident(name)} RENAME TO {quote_ident(new_name)}"
                )
                return
            except asyncpg.ObjectInUseError:  # a terminated session has not exited yet
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def ensure_database(admin_url: str, name: str) -> None:
    """Creates database ``name`` unless it exists (two starters may race: both succeed)."""
    await _ensure(admin_url, name, "SELECT 1 FROM pg_database WHERE datname = $1", "DATABASE {}")


async def ensure_role(admin_url: str, name: str) -> None:
    """Creates login role ``name`` (no superuser, no other rights) unless it exists."""
    await _ensure(admin_url, name, "SELECT 1 FROM pg_roles WHERE rolname = $1", "ROLE {} LOGIN")


_ALREADY_THERE = (
    asyncpg.DuplicateDatabaseError,
    asyncpg.DuplicateObjectError,
    asyncpg.UniqueViolationError,
)


async def _ensure(admin_url: str, name: str, exists: str, create: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if await conn.fetchval(exists, name):
            return
        # Another starter may create it between the check and here: that is success too.
        with contextlib.suppress(
            asyncpg.DuplicateDatabaseError,
            asyncpg.DuplicateObjectError,
            asyncpg.UniqueViolationError,
        ):
            await conn.execute("CREATE " + create.format(quote_ident(name)))
    finally:
        await conn.close()


class DatabaseUrlRequired(ConfigError):
    """DATABASE_URL is unset where the embedded PostgreSQL may not stand in for it."""


def refuse_embedded(settings: Settings) -> None:
    """DatabaseUrlRequired when the settings forbid the embedded server (an image, a unit):
    there a missing DATABASE_URL is a mistake, and a private database in the container's
    writable layer would hide it until its data were lost."""
    if settings.require_database_url:
        raise DatabaseUrlRequired(
            "DATABASE_URL is required: FLOWLOG_REQUIRE_DATABASE_URL is set, so no embedded "
            "PostgreSQL is started; set DATABASE_URL to the runtime role's URL, e.g. "
            "postgresql://flowlog:PASSWORD@db:5432/flowlog"
        )


@contextlib.contextmanager
def provide_database(settings: Settings) -> Iterator[DatabaseUrls]:
    """The URLs of flowlog's database for the duration of the block.

    Without DATABASE_URL, an embedded server is started in ``settings.data_dir`` (or attached
    to, if another flowlog process runs it) and stopped at the end. Call from the main thread.
    Its superuser owns the schema; the service runs as the role ``flowlog``, created here.
    """
    if settings.database_url:
        yield DatabaseUrls(settings.database_url, settings.owner_url)
        return
    refuse_embedded(settings)
    server = EmbeddedPostgres(settings.data_dir, system_user=settings.pg_system_user)
    with server:
        asyncio.run(ensure_database(server.dsn(), EMBEDDED_DATABASE))
        asyncio.run(ensure_role(server.dsn(), EMBEDDED_RUNTIME_ROLE))
        urls = DatabaseUrls(
            server.dsn(EMBEDDED_DATABASE, user=EMBEDDED_RUNTIME_ROLE), server.dsn(EMBEDDED_DATABASE)
        )
        log.info("using embedded PostgreSQL", extra={"database_url": urls.url})
        yield urls
