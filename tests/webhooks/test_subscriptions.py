"""Webhook subscriptions over REST: made (the secret shown once, derivable again only by the
same request's Idempotency-Key), listed, read with their delivery, changed, paused, resumed,
their secret rotated, deleted; every change an event of the subscription's stream with its
row written by the same statement; tenants kept apart (404 on every route); roles refused;
bad input refused with nothing changed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
from typing import Any

import asyncpg
import orjson
import pytest

from flowlog.workflow.errors import Code
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import A, B, ok, refused

HOOKS = "/api/v1/webhooks"
URL = "https://hooks.example.com/flowlog"
NO_HOOK = "0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b"


@pytest.fixture
async def service(make_service: MakeService) -> Service:
    # No reactor, so nothing delivers: the cursors and delivery tables stay as the tests
    # leave them (delivery has tests of its own).
    return await make_service(
        tokens=TOKENS, env={"FLOWLOG_WEBHOOK_ALLOW": "127.0.0.1"}, reactor=False
    )


async def make(service: Service, headers: dict[str, str] = A, **body: Any) -> dict[str, Any]:
    sent = {"url": URL, "events": ["FlowFailed"], **body}
    data: dict[str, Any] = await ok(await service.client.post(HOOKS, json=sent, headers=headers))
    return data


async def rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def installation_secret(database_url: str) -> bytes:
    found = await rows(database_url, "SELECT secret FROM callback_secret")
    return str(found[0]["secret"]).encode()


def derived(secret: bytes, webhook_id: str, version: int) -> str:
    key = hmac.new(secret, f"webhook\x00{webhook_id}\x00{version}".encode(), hashlib.sha256)
    return "whsec_" + base64.b64encode(key.digest()).decode()


async def test_a_subscription_is_made_with_its_secret_shown_once_and_its_cursor_registered(
    service: Service, database_url: str
) -> None:
    made = await make(
        service, events=["FlowFailed", "NodeFailed"], definitions=["backup"],
        statuses=["Error"], description="pager",
    )  # fmt: skip
    assert made["tenant"] == "tenant-a"
    assert made["url"] == URL
    assert made["events"] == ["FlowFailed", "NodeFailed"]
    assert made["definitions"] == ["backup"]
    assert made["statuses"] == ["Error"]
    assert made["state"] == "active"
    assert made["secretVersion"] == 1
    assert made["createdBy"] == "token:alice"
    assert made["version"] == 1
    # The secret: the installation's secret's HMAC of the id and version, never stored.
    assert made["secret"] == derived(await installation_secret(database_url), made["id"], 1)
    events = await rows(database_url, "SELECT type, data::text, metadata::text FROM events "
                        "WHERE stream_id = $1", "webhook-" + made["id"])  # fmt: skip
    assert [e["type"] for e in events] == ["WebhookCreated"]
    assert '"token:alice"' in events[0]["metadata"]
    dump = str(events) + str(await rows(database_url, "SELECT * FROM webhooks"))
    assert made["secret"] not in dump
    assert made["secret"].removeprefix("whsec_") not in dump
    # The row, written by the append's own statement, at the append's time.
    (row,) = await rows(database_url, "SELECT * FROM webhooks")
    assert row["id"] == made["id"]
    assert row["tenant_id"] == "tenant-a"
    assert row["stream_version"] == 1
    assert row["created_at"].isoformat().replace("+00:00", "Z")[:19] == made["createdAt"][:19]
    # The cursor: at the log's "now" at the create, below the create's own event.
    (cursor,) = await rows(
        database_url, "SELECT transaction_id::text::bigint AS xid, position FROM subscriptions "
        "WHERE name = $1", "webhook-" + made["id"],
    )  # fmt: skip
    (created,) = await rows(database_url, "SELECT transaction_id::text::bigint AS xid FROM events "
                            "WHERE stream_id = $1", "webhook-" + made["id"])  # fmt: skip
    assert cursor["position"] == 0
    assert cursor["xid"] <= created["xid"]
    # Never shown again.
    detail = await ok(await service.client.get(f"{HOOKS}/{made['id']}", headers=A))
    assert "secret" not in detail
    listed = (await ok(await service.client.get(HOOKS, headers=A), paged=True))["data"]
    assert [h["id"] for h in listed["webhooks"]] == [made["id"]]
    assert "secret" not in listed["webhooks"][0]
    assert detail["delivery"]["registered"] is True
    assert detail["delivery"]["pending"] == 0
    assert detail["delivery"]["dead"] == 0
    assert detail["delivery"]["failing"] is False


async def test_the_delivery_summary_reads_the_cursor_and_the_delivery_tables(
    service: Service, database_url: str
) -> None:
    made = await make(service)
    hook = made["id"]
    conn = await asyncpg.connect(database_url)
    try:
        # Three events after the cursor, two pending deliveries, one dead letter.
        for n in range(3):
            await conn.execute("INSERT INTO events (stream_id, version, type, data, metadata) "
                               "VALUES ($1, 1, 'Noise', '{}', '{}')", f"noise-{n}")  # fmt: skip
        await conn.execute(
            "INSERT INTO webhook_deliveries (webhook_id, position, stream_id, event_type, state, "
            "enqueued_at) VALUES ($1, 1, 'flow-x', 'FlowFailed', 'pending', now() - "
            "interval '30 seconds'), ($1, 2, 'flow-y', 'FlowFailed', 'pending', now()), "
            "($1, 3, 'flow-z', 'FlowFailed', 'dead', now())", hook,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO webhook_status (webhook_id, delivered, failed_attempts, dead, "
            "last_status, last_answer, failing) VALUES ($1, 5, 9, 1, 503, 'down', true)",
            hook,
        )
    finally:
        await conn.close()
    delivery = (await ok(await service.client.get(f"{HOOKS}/{hook}", headers=A)))["delivery"]
    assert delivery["lagEvents"] >= 3  # the create's own event may be behind it too
    assert delivery["lagCapped"] is False
    assert delivery["lagSeconds"] is not None
    assert delivery["pending"] == 2
    assert 29 <= delivery["oldestPendingSeconds"] < 120
    assert delivery["dead"] == 1
    assert delivery["delivered"] == 5
    assert delivery["failedAttempts"] == 9
    assert delivery["lastStatus"] == 503
    assert delivery["lastAnswer"] == "down"
    assert delivery["failing"] is True


async def test_an_idempotent_create_answers_the_same_subscription_and_secret(
    service: Service, database_url: str
) -> None:
    key = {**A, "Idempotency-Key": "hook-1"}
    body = {"url": URL, "events": ["FlowFailed"]}
    first = await ok(await service.client.post(HOOKS, json=body, headers=key))
    again = await ok(await service.client.post(HOOKS, json=body, headers=key))
    assert again == first
    # Concurrent twins: one subscription.
    twin_key = {**A, "Idempotency-Key": "hook-2"}
    twins = await asyncio.gather(
        *(service.client.post(HOOKS, json=body, headers=twin_key) for _ in range(5))
    )
    answers = [await ok(t) for t in twins]
    assert len({a["id"] for a in answers}) == 1
    assert len({a["secret"] for a in answers}) == 1
    assert len(await rows(database_url, "SELECT id FROM webhooks")) == 2
    # The same key with another body: 422, nothing made.
    other = {"url": URL, "events": ["NodeFailed"]}
    await refused(await service.client.post(HOOKS, json=other, headers=key), 422,
                  Code.IDEMPOTENCY_REUSED)  # fmt: skip
    assert len(await rows(database_url, "SELECT id FROM webhooks")) == 2
    # The same key in another tenant is another request.
    theirs_key = {**B, "Idempotency-Key": "hook-1"}
    theirs = await ok(await service.client.post(HOOKS, json=body, headers=theirs_key))
    assert theirs["id"] != first["id"]


async def test_changes_are_events_and_each_is_idempotent(
    service: Service, database_url: str
) -> None:
    made = await make(service)
    one = f"{HOOKS}/{made['id']}"
    client = service.client
    changed = await ok(await client.patch(
        one, json={"events": ["FlowFailed", "FlowFinished"], "statuses": ["Error", "Finished"],
                   "description": "two"}, headers={**A, "Idempotency-Key": "p1"},
    ))  # fmt: skip
    assert changed["events"] == ["FlowFailed", "FlowFinished"]
    assert changed["statuses"] == ["Error", "Finished"]
    assert changed["url"] == URL  # not sent: kept
    assert changed["version"] == 2
    again = await ok(await client.patch(
        one, json={"events": ["FlowFailed", "FlowFinished"], "statuses": ["Error", "Finished"],
                   "description": "two"}, headers={**A, "Idempotency-Key": "p1"},
    ))  # fmt: skip
    assert again == changed
    await refused(await client.patch(one, json={"description": "three"},
                                     headers={**A, "Idempotency-Key": "p1"}),
                  422, Code.IDEMPOTENCY_REUSED)  # fmt: skip
    # null: any again.
    anyhow = await ok(await client.patch(one, json={"statuses": None}, headers=A))
    assert anyhow["statuses"] is None
    # The same settings again: no event.
    same = await ok(await client.patch(one, json={"statuses": None}, headers=A))
    assert same["version"] == anyhow["version"]
    paused = await ok(await client.post(one + "/pause", json={"reason": "maintenance"},
                                        headers={**A, "Idempotency-Key": "pa"}))  # fmt: skip
    assert paused["state"] == "paused"
    pause_again = await client.post(one + "/pause", json={"reason": "maintenance"},
                                    headers={**A, "Idempotency-Key": "pa"})  # fmt: skip
    assert await ok(pause_again) == paused
    other_reason = await client.post(one + "/pause", json={"reason": "another"},
                                     headers={**A, "Idempotency-Key": "pa"})  # fmt: skip
    await refused(other_reason, 422, Code.IDEMPOTENCY_REUSED)
    resumed = await ok(await client.post(one + "/resume", json={}, headers=A))
    assert resumed["state"] == "active"
    rotated = await ok(await client.post(one + "/secret", json={},
                                         headers={**A, "Idempotency-Key": "rot"}))  # fmt: skip
    assert rotated["secretVersion"] == 2
    secret = await installation_secret(database_url)
    assert rotated["secret"] == derived(secret, made["id"], 2)
    assert rotated["secret"] != made["secret"]
    # Sent again with its key: the same secret, not a third one.
    rotate_again = await client.post(one + "/secret", json={},
                                     headers={**A, "Idempotency-Key": "rot"})  # fmt: skip
    assert await ok(rotate_again) == rotated
    deleted = await ok(await client.delete(one, params={"reason": "gone"}, headers=A))
    assert deleted["state"] == "deleted"
    await refused(await client.get(one, headers=A), 404, Code.WEBHOOK_NOT_FOUND)
    for path in ("/pause", "/resume", "/secret"):
        await refused(await client.post(one + path, json={}, headers=A), 404,
                      Code.WEBHOOK_NOT_FOUND)  # fmt: skip
    await refused(await client.patch(one, json={"description": "x"}, headers=A), 404,
                  Code.WEBHOOK_NOT_FOUND)  # fmt: skip
    await refused(await client.delete(one, headers=A), 404, Code.WEBHOOK_NOT_FOUND)
    listed = (await ok(await client.get(HOOKS, headers=A), paged=True))["data"]
    assert listed["webhooks"] == []
    types = await rows(database_url, "SELECT type FROM events WHERE stream_id = $1 ORDER BY "
                       "version", "webhook-" + made["id"])  # fmt: skip
    assert [t["type"] for t in types] == [
        "WebhookCreated", "WebhookUpdated", "WebhookUpdated", "WebhookPaused", "WebhookResumed",
        "WebhookSecretRotated", "WebhookDeleted",
    ]  # fmt: skip
    (row,) = await rows(database_url, "SELECT state, secret_version, stream_version, "
                        "description, statuses FROM webhooks")  # fmt: skip
    assert dict(row) == {"state": "deleted", "secret_version": 2, "stream_version": 7,
                         "description": "two", "statuses": None}  # fmt: skip
    reasons = await rows(database_url, "SELECT metadata->>'reason' AS r FROM events WHERE "
                         "type = 'WebhookPaused'")  # fmt: skip
    assert reasons[0]["r"] == "maintenance"


async def test_every_change_is_announced_after_it_committed(
    service: Service, database_url: str
) -> None:
    heard: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        await conn.add_listener("flowlog_webhooks", lambda *args: heard.append(args[3]))
        made = await make(service)
        await ok(await service.client.post(f"{HOOKS}/{made['id']}/pause", json={}, headers=A))
        for _ in range(100):
            if len(heard) >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    assert heard == [made["id"], made["id"]]


async def test_another_tenants_subscription_is_404_on_every_route(
    service: Service, database_url: str
) -> None:
    made = await make(service)
    one = f"{HOOKS}/{made['id']}"
    client = service.client
    await refused(await client.get(one, headers=B), 404, Code.WEBHOOK_NOT_FOUND)
    await refused(await client.patch(one, json={"description": "mine"}, headers=B), 404,
                  Code.WEBHOOK_NOT_FOUND)  # fmt: skip
    for path in ("/pause", "/resume", "/secret"):
        await refused(await client.post(one + path, json={}, headers=B), 404,
                      Code.WEBHOOK_NOT_FOUND)  # fmt: skip
    await refused(await client.delete(one, headers=B), 404, Code.WEBHOOK_NOT_FOUND)
    listed = (await ok(await client.get(HOOKS, headers=B), paged=True))["data"]
    assert listed["webhooks"] == []
    # A well-formed id of no subscription answers the same as another tenant's.
    await refused(await client.get(f"{HOOKS}/{NO_HOOK}", headers=A), 404, Code.WEBHOOK_NOT_FOUND)
    # Nothing of theirs changed.
    types = await rows(database_url, "SELECT type FROM events WHERE stream_id = $1",
                       "webhook-" + made["id"])  # fmt: skip
    assert [t["type"] for t in types] == ["WebhookCreated"]


async def test_a_malformed_id_is_bad_input(service: Service) -> None:
    for bad in ("nope", NO_HOOK.upper(), "0b6f7c1e-5d2a-1e8f-9a3b-7c6d5e4f3a2b", "x" * 300):
        await refused(await service.client.get(f"{HOOKS}/{bad}", headers=A), 400,
                      Code.BAD_INPUT)  # fmt: skip
        await refused(await service.client.post(f"{HOOKS}/{bad}/pause", json={}, headers=A),
                      400, Code.BAD_INPUT)  # fmt: skip


async def test_roles(service: Service) -> None:
    client = service.client
    made = await make(service)
    one = f"{HOOKS}/{made['id']}"
    keys = {}
    for role in ("viewer", "operator"):
        answer = await ok(await client.post("/api/v1/keys", json={"name": role, "role": role},
                                            headers=A))  # fmt: skip
        keys[role] = {"Authorization": f"Bearer {answer['key']}"}
    for role, headers in keys.items():
        await ok(await client.get(HOOKS, headers=headers), paged=True)
        detail = await ok(await client.get(one, headers=headers))
        assert "secret" not in detail
        await refused(await client.post(HOOKS, json={"url": URL, "events": ["FlowFailed"]},
                                        headers=headers), 403, Code.ROLE_REQUIRED)  # fmt: skip
        await refused(await client.patch(one, json={"description": role}, headers=headers),
                      403, Code.ROLE_REQUIRED)  # fmt: skip
        for path in ("/pause", "/resume", "/secret"):
            await refused(await client.post(one + path, json={}, headers=headers), 403,
                          Code.ROLE_REQUIRED)  # fmt: skip
        await refused(await client.delete(one, headers=headers), 403, Code.ROLE_REQUIRED)
    # No token at all.
    await refused(await client.get(HOOKS), 401, Code.UNAUTHORIZED)
    await refused(await client.get(one), 401, Code.UNAUTHORIZED)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["FlowExploded"]}, "events"),
        ({"url": URL, "events": ["FlowFailed", "FlowFailed"]}, "once"),
        ({"url": URL, "events": ["FlowFailed"] * 33}, "events"),
        ({"url": URL}, "events"),
        ({"events": ["FlowFailed"]}, "url"),
        ({"url": URL, "events": ["FlowFailed"], "statuses": ["Exploded"]}, "statuses"),
        ({"url": URL, "events": ["FlowFailed"], "statuses": []}, "statuses"),
        ({"url": URL, "events": ["FlowFailed"], "definitions": ["d"] * 101}, "definitions"),
        ({"url": URL, "events": ["FlowFailed"], "definitions": ["x" * 201]}, "definitions"),
        ({"url": URL, "events": ["FlowFailed"], "definitions": [""]}, "definitions"),
        ({"url": URL, "events": ["FlowFailed"], "description": "x" * 501}, "description"),
        ({"url": URL, "events": ["FlowFailed"], "description": "a\u0000b"}, "NUL"),
        ({"url": URL + "\u0000", "events": ["FlowFailed"]}, ""),
        ({"url": URL, "events": ["FlowFailed"], "secret": "whsec_mine"}, "secret"),
        ({"url": URL, "events": ["FlowFailed"], "tenant": "tenant-b"}, "tenant"),
        ({"url": URL, "events": "FlowFailed"}, "events"),
        ({"url": URL, "events": [{"deep": [[[[["FlowFailed"]]]]]}]}, "events"),
        ({"url": URL, "events": ["FlowFailed"], "description": 7}, "description"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_made(
    service: Service, database_url: str, body: dict[str, Any], says: str
) -> None:
    refusal = await refused(await service.client.post(HOOKS, json=body, headers=A), 400,
                            Code.BAD_INPUT)  # fmt: skip
    assert says in refusal["message"]
    assert await rows(database_url, "SELECT id FROM webhooks") == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2/in",
        "http://10.0.0.1/in",
        "http://169.254.169.254/latest",
        "http://[::1]/in",
        "http://localhost/in",
        "http://2130706433/in",
        "ftp://example.com/",
        "https://user:pw@example.com/in",
        "https://example.com/in#frag",
        "https://example.com:0/in",
        "https://example.com/" + "a" * 2100,
        "https://exa mple.com/",
    ],
)
async def test_urls_no_webhook_may_reach_are_refused_at_create_and_change(
    service: Service, database_url: str, url: str
) -> None:
    await refused(await service.client.post(HOOKS, json={"url": url, "events": ["FlowFailed"]},
                                            headers=A), 400, Code.WEBHOOK_URL_REFUSED
                  if len(url) <= 2048 else Code.BAD_INPUT)  # fmt: skip
    assert await rows(database_url, "SELECT id FROM webhooks") == []
    made = await make(service)
    await refused(await service.client.patch(f"{HOOKS}/{made['id']}", json={"url": url},
                                             headers=A), 400, Code.WEBHOOK_URL_REFUSED
                  if len(url) <= 2048 else Code.BAD_INPUT)  # fmt: skip
    (row,) = await rows(database_url, "SELECT url, stream_version FROM webhooks")
    assert dict(row) == {"url": URL, "stream_version": 1}


async def test_an_allowed_address_is_accepted(service: Service) -> None:
    made = await make(service, url="http://127.0.0.1:8099/in")
    assert made["url"] == "http://127.0.0.1:8099/in"


async def test_bad_bodies_of_changes_are_refused(service: Service, database_url: str) -> None:
    made = await make(service)
    one = f"{HOOKS}/{made['id']}"
    client = service.client
    for body in ({}, {"url": None}, {"events": None}, {"events": []}, {"state": "paused"},
                 {"description": "a\u0000"}, {"secretVersion": 9}):  # fmt: skip
        await refused(await client.patch(one, json=body, headers=A), 400, Code.BAD_INPUT)
    for path in ("/pause", "/resume", "/secret"):
        await refused(await client.post(one + path, json={"reason": "x" * 1001}, headers=A),
                      400, Code.BAD_INPUT)  # fmt: skip
        await refused(await client.post(one + path, json={"what": 1}, headers=A), 400,
                      Code.BAD_INPUT)  # fmt: skip
    # A key twice in one object: refused before anything is read.
    duplicate = (
        b'{"url": "https://a.example.com/", "url": "http://10.0.0.1/", "events": ["FlowFailed"]}'
    )
    await refused(await client.post(HOOKS, data=duplicate, headers={**A, "Content-Type":
                                    "application/json"}), 400, Code.BAD_INPUT)  # fmt: skip
    await refused(await client.patch(one, data=b'{"description": "a", "description": "b"}',
                                     headers={**A, "Content-Type": "application/json"}),
                  400, Code.BAD_INPUT)  # fmt: skip
    # Deep nesting and a huge body.
    deep = b'{"url": "' + URL.encode() + b'", "events": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    answer = await client.post(HOOKS, data=deep, headers={**A, "Content-Type": "application/json"})
    assert answer.status == 400
    huge = orjson.dumps({"url": URL, "events": ["FlowFailed"], "description": "x" * 2_000_000})
    answer = await client.post(HOOKS, data=io.BytesIO(huge),
                               headers={**A, "Content-Type": "application/json"})  # fmt: skip
    await refused(answer, 413, Code.TOO_LARGE)
    bad_cursor = await client.get(HOOKS, params={"cursor": "bm90IGEgY3Vyc29y"}, headers=A)
    await refused(bad_cursor, 400, Code.BAD_INPUT)
    (row,) = await rows(database_url, "SELECT stream_version FROM webhooks")
    assert row["stream_version"] == 1


async def test_pages(service: Service) -> None:
    made = [await make(service, description=str(n)) for n in range(5)]
    seen: list[str] = []
    cursor = ""
    while True:
        params = {"pageSize": "2", **({"cursor": cursor} if cursor else {})}
        data = (await ok(await service.client.get(HOOKS, params=params, headers=A),
                         paged=True))["data"]  # fmt: skip
        seen += [h["id"] for h in data["webhooks"]]
        cursor = data["nextCursor"]
        if cursor is None:
            break
    assert seen == [h["id"] for h in reversed(made)]


async def test_a_long_backlog_is_counted_up_to_a_cap(service: Service, database_url: str) -> None:
    made = await make(service)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO events (stream_id, version, type, data, metadata) "
            "SELECT 'noise-' || g, 1, 'Noise', '{}', '{}' FROM generate_series(1, 10005) AS g"
        )
    finally:
        await conn.close()
    detail = await ok(await service.client.get(f"{HOOKS}/{made['id']}", headers=A))
    assert detail["delivery"]["lagEvents"] == 10_000
    assert detail["delivery"]["lagCapped"] is True
    page = await service.client.get("/webhooks", headers=A)
    assert page.status == 200
    assert "1,000+ events" in await page.text()
