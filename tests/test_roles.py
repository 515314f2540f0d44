"""Least privilege (issue 11): the runtime role that serves cannot rewrite the log nor place
an event elsewhere in its order or time; the owner migrates and grants; the service runs as
the runtime role (the API and workflow suites do too: their fixtures connect as one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from flowlog.engine import Engine
from flowlog.eventstore import EventStore, Expect, NewEvent, create_pool
from flowlog.migrate import MigrationError, pending, prepare_schema
from flowlog.projections.rebuild import rebuild
from flowlog.roles import DatabaseUrls
from flowlog.workflow.definition import Registry
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.state import FlowStatus
from tests.engines import FAST
from tests.helpers import cli_env, create_role, drop_role, run_flowlog
from tests.workflow.defs import backup_flow
from tests.workflow.helpers import wait_for_status

GRANTS = """
SELECT c.relname, a.grantee, a.privilege_type
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relname IN ('workflows', 'workflow_nodes', 'workflow_counts', 'workflow_definitions')
ORDER BY 1, 2, 3
"""

LOG = """
SELECT position, transaction_id::text, stream_id, version, type, data, metadata, recorded_at
FROM events ORDER BY position
"""

# Each way an owner has to rewrite the log; as the runtime role, every one is refused.
BYPASSES = {
    "update": ["UPDATE events SET data = '{}'"],
    "delete": ["DELETE FROM events"],
    "truncate": ["TRUNCATE events"],
    "disable trigger, then delete": [
        "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
        "DELETE FROM events",
    ],
    "disable trigger user, then truncate": [
        "ALTER TABLE events DISABLE TRIGGER USER",
        "TRUNCATE events",
    ],
    "drop trigger": ["DROP TRIGGER events_no_update_or_delete ON events"],
    "replace the trigger function": [
        "CREATE OR REPLACE FUNCTION events_refuse_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END; $$"
    ],
    "drop table": ["DROP TABLE events"],
    "take the table": ["ALTER TABLE events OWNER TO CURRENT_USER"],
    "rename the table": ["ALTER TABLE events RENAME TO events_old"],
    "lock out appends": ["LOCK TABLE events IN EXCLUSIVE MODE"],
    "grant itself": ["SELECT flowlog_grant_runtime(current_user)"],
}

# Inserts that set what only the server may: the transaction id (the log's order), the
# position, the time. Rows like these were never delivered to a caught-up subscription.
FORGERIES = {
    "transaction id '1'": (
        "INSERT INTO events (transaction_id, stream_id, version, type, data) "
        "VALUES ('1', 'forged', 1, 'Forged', '{}')"
    ),
    "a transaction id copied from the log": (
        "INSERT INTO events (transaction_id, stream_id, version, type, data) "
        "SELECT transaction_id, 'forged', 1, 'Forged', '{}' FROM events LIMIT 1"
    ),
    "a position": (
        "INSERT INTO events (position, stream_id, version, type, data) "
        "OVERRIDING SYSTEM VALUE VALUES (1000000, 'forged', 1, 'Forged', '{}')"
    ),
    "a recorded time": (
        "INSERT INTO events (recorded_at, stream_id, version, type, data) "
        "VALUES ('2000-01-01', 'forged', 1, 'Forged', '{}')"
    ),
}


@pytest.fixture
async def runtime(runtime_url: str, database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the runtime role, to a log with a few events in it."""
    owner = await create_pool(database_url, max_size=1)
    store = EventStore(owner)
    for n in range(3):
        await store.append(f"s-{n}", [NewEvent("E", {"n": n})], Expect.NO_STREAM)
    await owner.close()
    conn = await asyncpg.connect(runtime_url)
    yield conn
    await conn.close()


@pytest.mark.parametrize("statements", BYPASSES.values(), ids=BYPASSES.keys())
async def test_the_runtime_role_cannot_rewrite_the_log(
    runtime: asyncpg.Connection, statements: list[str]
) -> None:
    before = await runtime.fetch(LOG)

    async def attempt() -> None:
        async with runtime.transaction():
            for statement in statements:
                await runtime.execute(statement)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await attempt()
    assert await runtime.fetch(LOG) == before


@pytest.mark.parametrize("statement", FORGERIES.values(), ids=FORGERIES.keys())
async def test_only_the_server_sets_an_events_place_and_time(
    runtime: asyncpg.Connection, statement: str
) -> None:
    before = await runtime.fetch(LOG)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute(statement)
    assert await runtime.fetch(LOG) == before
    # What it may do: append, the server setting the rest.
    row = await runtime.fetchrow(
        "INSERT INTO events (stream_id, version, type, data) VALUES ('mine', 1, 'E', '{}') "
        "RETURNING transaction_id = pg_current_xact_id() AS own_id, recorded_at"
    )
    assert row is not None
    assert row["own_id"]


async def test_every_table_is_granted_to_the_runtime_role(
    runtime: asyncpg.Connection,
) -> None:
    """A migration that adds a table must extend flowlog_grant_runtime: this says which."""
    rows = await runtime.fetch(
        "SELECT c.relname, has_table_privilege(c.oid, 'SELECT') AS readable "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
    )
    assert [r["relname"] for r in rows if not r["readable"]] == []
    writable = {
        r["relname"]
        for r in await runtime.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' "
            "AND has_table_privilege(c.oid, 'UPDATE')"
        )
    }
    assert "events" not in writable
    assert "schema_migrations" not in writable
    assert {"flow_work", "workflows", "subscriptions", "idempotency_keys"} <= writable


async def test_the_engine_serves_as_the_runtime_role_and_a_rebuild_keeps_its_rights(
    runtime_url: str, database_url: str
) -> None:
    urls = DatabaseUrls(runtime_url, owner_url=database_url)
    async with Engine(
        urls.url, Registry([backup_flow()]), reactor=FAST, owner_url=urls.owner_url
    ) as engine:
        service = engine.service
        first = (await service.create("c-1", "cluster", "backup", context={"n": 1})).flow_id
        await service.start(first)
        await wait_for_status(service, first, {FlowStatus.FINISHED})
        # The owner rebuilds the projections: new tables, given the old ones' grants in the
        # swap (the runtime role's, and a reporting role's: here PUBLIC's).
        owner = await create_pool(database_url, max_size=2)
        try:
            await owner.execute("GRANT SELECT ON workflow_counts TO PUBLIC")
            grants = await owner.fetch(GRANTS)
            report = await rebuild(EventStore(owner), PROJECTOR, progress=False)
            assert await owner.fetch(GRANTS) == grants
        finally:
            await owner.close()
        assert report.flows == 1
        second = (await service.create("c-2", "cluster", "backup", context={"n": 2})).flow_id
        await service.start(second)
        await wait_for_status(service, second, {FlowStatus.FINISHED})
        page = await service.list_workflows()
        assert {row.id for row in page.rows} == {first, second}


async def test_the_runtime_role_may_not_migrate_and_says_who_may(
    empty_database_url: str,
) -> None:
    runtime = await create_role(empty_database_url, runtime=False)
    try:
        with pytest.raises(MigrationError, match="FLOWLOG_OWNER_URL"):
            await prepare_schema(runtime)
        # The owner migrates and grants; then the runtime role finds nothing missing.
        applied = await prepare_schema(DatabaseUrls(runtime, owner_url=empty_database_url))
        assert applied
        conn = await asyncpg.connect(runtime)
        try:
            assert await pending(conn) == []
        finally:
            await conn.close()
        assert await prepare_schema(runtime) == []
    finally:
        await drop_role(empty_database_url, runtime)


def test_flowlog_migrate_with_two_urls_grants_the_runtime_role(empty_database_url: str) -> None:
    runtime = asyncio.run(create_role(empty_database_url, runtime=False))
    try:
        alone = run_flowlog("migrate", env=cli_env(DATABASE_URL=runtime))
        assert alone.returncode == 1
        assert "FLOWLOG_OWNER_URL" in alone.stderr
        both = run_flowlog(
            "migrate", env=cli_env(DATABASE_URL=runtime, FLOWLOG_OWNER_URL=empty_database_url)
        )
        assert both.returncode == 0, both.stderr
        assert both.stdout.startswith("applied migrations 1, 2")
        refused = run_flowlog(
            "psql", "--", "-c", "DELETE FROM events", env=cli_env(DATABASE_URL=runtime)
        )
        assert "permission denied for table events" in refused.stderr
    finally:
        asyncio.run(drop_role(empty_database_url, runtime))


async def test_one_role_that_can_rewrite_the_log_is_warned_about(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flowlog.migrate"):
        await prepare_schema(database_url, serving=True)
    assert any("can rewrite the event log" in r.getMessage() for r in caplog.records)


async def test_the_runtime_role_is_not_warned_about(
    runtime_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flowlog.migrate"):
        await prepare_schema(runtime_url, serving=True)
    assert not any("can rewrite the event log" in r.getMessage() for r in caplog.records)
