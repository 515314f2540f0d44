"""The ``webhooks`` table is a projection of the subscriptions' streams: rebuilt equal from
the log, its drift found by verify; delivery's streams under the same prefix are not taken
for subscriptions; an import registers each live subscription's cursor at the import's end."""

from __future__ import annotations

import asyncio
import io

import asyncpg

from flowlog.audit.transfer import Selection, export_log, import_log
from flowlog.eventstore import EventStore, Expect, NewEvent, connect
from flowlog.webhooks.events import Settings, new_id
from flowlog.webhooks.rebuild import rebuild_webhooks, verify_webhooks
from flowlog.webhooks.store import WebhookStore
from flowlog.workflow.caller import Caller
from tests.projections.test_rebuild import run_cli

COLUMNS = (
    "id, tenant_id, url, events, definitions, statuses, description, state, secret_version, "
    "created_at, created_by, updated_at, updated_by, stream_version"
)
ADMIN = Caller(actor="key:admin")


async def _fill(store: EventStore) -> list[str]:
    hooks = WebhookStore(store)
    one, two, three = new_id(), new_id(), new_id()
    settings = Settings(url="https://a.example.com/", events=("FlowFailed",))
    await hooks.create(one, "acme", settings, ADMIN)
    await hooks.update(one, {"statuses": ["Error"], "description": "d"}, tenant="acme",
                       caller=Caller(actor="key:other"))  # fmt: skip
    await hooks.rotate(one, tenant="acme", caller=ADMIN)
    await hooks.create(two, "beta", settings, ADMIN)
    await hooks.pause(two, tenant=None, caller=ADMIN)
    await hooks.create(three, "acme", settings, ADMIN)
    await hooks.delete(three, tenant="acme", caller=ADMIN)
    # Delivery's own stream under the prefix: not a subscription.
    await store.append(f"webhook-replays-{one}", [NewEvent("WebhookReplayRequested", {"x": 1})],
                       Expect.NO_STREAM)  # fmt: skip
    return [one, two, three]


async def test_the_table_is_rebuilt_equal_and_drift_is_found(
    pool: asyncpg.Pool, store: EventStore
) -> None:
    await _fill(store)
    before = await pool.fetch(f"SELECT {COLUMNS} FROM webhooks ORDER BY id")
    assert len(before) == 3
    check = await verify_webhooks(pool)
    assert check.webhooks == 3
    assert check.differences == []
    await pool.execute(
        "UPDATE webhooks SET url = 'https://evil.example.com/' WHERE state = 'paused'"
    )
    drift = (await verify_webhooks(pool)).differences
    assert len(drift) == 1
    assert "evil" in drift[0]
    await pool.execute("DELETE FROM webhooks")
    assert len((await verify_webhooks(pool)).differences) == 3
    assert await rebuild_webhooks(pool) == 3
    after = await pool.fetch(f"SELECT {COLUMNS} FROM webhooks ORDER BY id")
    assert [dict(r) for r in after] == [dict(r) for r in before]
    assert (await verify_webhooks(pool)).differences == []


async def test_an_import_registers_live_cursors_at_its_end(
    database_url: str, empty_database_url: str, store: EventStore
) -> None:
    one, two, _deleted = await _fill(store)
    out = io.BytesIO()
    await export_log(database_url, out, Selection(), progress=False)
    await import_log(empty_database_url, io.BytesIO(out.getvalue()), progress=False)
    conn = await connect(empty_database_url)
    try:
        rows = await conn.fetch(f"SELECT {COLUMNS} FROM webhooks ORDER BY id")
        cursors = await conn.fetch(
            "SELECT name, transaction_id::text::bigint AS xid, position FROM subscriptions "
            "WHERE name LIKE 'webhook-%'"
        )
        newest = await conn.fetchrow(
            "SELECT transaction_id::text::bigint AS xid, position FROM events "
            "ORDER BY transaction_id DESC, position DESC LIMIT 1"
        )
    finally:
        await conn.close()
    source = await store.pool.fetch(f"SELECT {COLUMNS} FROM webhooks ORDER BY id")
    assert [dict(r) for r in rows] == [dict(r) for r in source]
    # The live ones (active and paused), not the deleted one; past every imported event.
    assert {c["name"] for c in cursors} == {f"webhook-{one}", f"webhook-{two}"}
    assert newest is not None
    assert all((c["xid"], c["position"]) >= (newest["xid"], newest["position"]) for c in cursors)


async def test_the_cli_rebuilds_and_verifies_the_webhooks(
    pool: asyncpg.Pool, store: EventStore, database_url: str
) -> None:
    await _fill(store)
    await pool.execute("UPDATE webhooks SET description = 'tampered'")
    found = await asyncio.to_thread(run_cli, "verify", database_url)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "3 webhooks: 3 differences" in found.stdout
    rebuilt = await asyncio.to_thread(run_cli, "rebuild", database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "3 webhooks" in rebuilt.stdout
    again = await asyncio.to_thread(run_cli, "verify", database_url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 webhooks: no drift" in again.stdout


async def test_an_event_of_a_later_release_in_a_stream_is_passed_over(
    pool: asyncpg.Pool, store: EventStore
) -> None:
    hooks = WebhookStore(store)
    one = new_id()
    settings = Settings(url="https://a.example.com/", events=("FlowFailed",))
    await hooks.create(one, "acme", settings, ADMIN)
    await store.append(f"webhook-{one}", [NewEvent("WebhookSomethingNew", {"x": 1})], 1)
    seen = await hooks.get(one, "acme")
    assert seen.version == 2
    assert seen.settings == settings
    paused = await hooks.pause(one, tenant="acme", caller=ADMIN)
    assert paused.version == 3
    assert paused.state == "paused"
    assert await rebuild_webhooks(pool) == 1
    assert (await verify_webhooks(pool)).differences == []
