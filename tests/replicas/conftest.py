"""A real streaming replica for the read-routing tests: an embedded primary started for the
test session (per xdist worker), and replicas made from it with ``pg_basebackup -R``.

The machine's own PostgreSQL has no replication access configured, so these tests bring
their own primary (its socket-only server allows replication to local users, as initdb
writes it)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from flowlog.api import keys
from flowlog.config import Settings
from flowlog.database import create_database, drop_database, with_database
from flowlog.engine import Engine
from flowlog.migrate import migrate_database
from flowlog.pgserver import EmbeddedPostgres
from flowlog.replicas.connect import until_replayed
from flowlog.web import create_app
from flowlog.workflow.definition import Registry
from tests.workflow.defs import backup_flow

# Durable enough for a test, and quick; commits still wait for their WAL to be written,
# so the replica streams it at once.
PRIMARY_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


@dataclasses.dataclass
class Replicated:
    primary: EmbeddedPostgres
    replica: EmbeddedPostgres
    folder: Path

    def make_replica(self) -> EmbeddedPostgres:
        """Another replica of the primary, started (its own data directory)."""
        replica = self.primary.replicate(
            self.folder / f"replica-{secrets.token_hex(3)}", port=self.primary.port
        )
        replica.start()
        return replica


@pytest.fixture(scope="session")
def replicated() -> Iterator[Replicated]:
    folder = Path(tempfile.mkdtemp(prefix="flrep-", dir="/tmp"))
    try:
        with EmbeddedPostgres(folder / "primary", settings=PRIMARY_SETTINGS) as primary:
            replica = primary.replicate(folder / "replica", port=primary.port)
            with replica:
                yield Replicated(primary, replica, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclasses.dataclass
class Database:
    """A migrated database on the primary, and the same database on a replica."""

    name: str
    primary_url: str
    replica_url: str


@pytest.fixture
async def database(replicated: Replicated) -> AsyncIterator[Database]:
    name = f"flowlog_rep_{secrets.token_hex(5)}"
    await create_database(replicated.primary.dsn(), name)
    url = with_database(replicated.primary.dsn(), name)
    await migrate_database(url)
    db = Database(name, url, replicated.replica.dsn(name))
    try:
        # A bound, not a wait: on a loaded machine (a CI run at twice its usual length) 20 s
        # ran out for five tests in a row; what the replica was doing then is in the failure.
        async with asyncio.timeout(60):
            await until_replayed(db.primary_url, db.replica_url)
    except TimeoutError:
        pytest.fail(f"the replica did not replay {name} in 60 s: {await replay_state(replicated)}")
    yield db
    await drop_database(replicated.primary.dsn(), name)


async def replay_state(replicated: Replicated) -> dict[str, object]:
    """Where the replica's replay stands against the primary (for a failure's message)."""
    primary = await asyncpg.connect(replicated.primary.dsn())
    replica = await asyncpg.connect(replicated.replica.dsn())
    try:
        state = dict(await replica.fetchrow(REPLAY_STATE) or {})
        state["primary_lsn"] = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
        return state
    finally:
        await primary.close()
        await replica.close()


REPLAY_STATE = """
SELECT pg_is_wal_replay_paused() AS paused, pg_last_wal_receive_lsn()::text AS received,
       pg_last_wal_replay_lsn()::text AS replayed, pg_last_xact_replay_timestamp() AS replayed_at,
       (SELECT status FROM pg_stat_wal_receiver) AS receiver,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS sessions,
       -- RecoveryConflict*: replay waits for a replica query (max_standby_streaming_delay).
       (SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup') AS replay_waits_on
"""


async def replica_query(url: str, statement: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client(database: Database) -> AsyncIterator[MakeClient]:
    """A service on the test database whose reads go to the given replicas (by default the
    session's replica)."""
    made: list[Client] = []

    async def make(*replica_urls: str, cookies: bool = False, **changes: object) -> Client:
        """``cookies``: the client keeps cookies (a browser's session) and so presents its
        last write's position by itself; without, only a header presents one."""
        settings = Settings.from_env({}).model_copy(
            update={"concurrency": 8, "pool_size": 8,
                    "read_database_urls": replica_urls or (database.replica_url,), **changes}
        )  # fmt: skip
        app = create_app(settings, database.primary_url, Registry([backup_flow()]))
        jar = None if cookies else DummyCookieJar()
        client = TestClient(TestServer(app), cookie_jar=jar)
        await client.start_server()
        made.append(client)
        return client

    yield make
    for client in reversed(made):
        await client.close()


def engine_of(client: Client) -> Engine:
    return client.app[keys.ENGINE]


async def reads_by(client: Client) -> dict[tuple[str, str], float]:
    """``flowlog_reads_total`` by (server, why), from the service's own /metrics."""
    text = await (await client.get("/metrics")).text()
    return {
        (sample.labels["server"], sample.labels["why"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "flowlog_reads_total"
    }
