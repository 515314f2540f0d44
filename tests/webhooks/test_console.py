"""The console's Webhooks pages: each subscription with its lag, last delivery and failures;
one subscription with its dead letters (the receiver's answer escaped and cut); actions only
for the roles that may take them; another tenant's subscription is not there."""

from __future__ import annotations

from typing import Any

import asyncpg

from flowlog.access.roles import Role
from tests.api.conftest import MakeService, Service
from tests.api.helpers import ok
from tests.api.test_keys import bearer, first_key, until

HOOKS = "/api/v1/webhooks"
NASTY = "<script>alert('x')</script>" + "y" * 1000


async def _service(make_service: MakeService, database_url: str) -> tuple[Service, dict[str, str]]:
    service = await make_service()
    keys = {
        "admin": await first_key(database_url, name="root", role=Role.ADMIN),
        "operator": await first_key(database_url, name="hands", role=Role.OPERATOR),
        "viewer": await first_key(database_url, name="eyes", role=Role.VIEWER),
        "other": await first_key(database_url, tenant="beta", name="them", role=Role.ADMIN),
    }

    async def known() -> bool:
        answer = await service.client.get(HOOKS, headers=bearer(keys["viewer"]))
        return answer.status == 200

    await until(known)
    return service, keys


async def seed_dead_letter(database_url: str, webhook_id: str, flow_id: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO webhook_deliveries (webhook_id, position, stream_id, event_type, "
            "flow_status, state, attempts, last_status, last_answer, first_failed_at, dead_at) "
            "VALUES ($1, 4242, $2, 'FlowFailed', 'Error', 'dead', 17, 502, $3, "
            "now() - interval '1 day', now())", webhook_id, "flow-" + flow_id, NASTY,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO webhook_status (webhook_id, delivered, failed_attempts, dead, "
            "last_status, last_answer, failing) VALUES ($1, 3, 17, 1, 502, $2, true)",
            webhook_id, NASTY,
        )  # fmt: skip
    finally:
        await conn.close()


async def page(service: Service, key: str, path: str, status: int = 200) -> str:
    answer = await service.client.get(path, headers=bearer(key))
    text = await answer.text()
    assert answer.status == status, text
    return text


async def make(service: Service, key: str, **body: Any) -> dict[str, Any]:
    sent = {"url": "https://hooks.example.com/in", "events": ["FlowFailed", "NodeFailed"], **body}
    made: dict[str, Any] = await ok(await service.client.post(HOOKS, json=sent,
                                                              headers=bearer(key)))  # fmt: skip
    return made


async def test_the_pages_show_subscriptions_dead_letters_and_actions_by_role(
    make_service: MakeService, database_url: str
) -> None:
    service, keys = await _service(make_service, database_url)
    made = await make(service, keys["admin"], description="<b>pager</b>")
    flow_id = "0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b"
    await seed_dead_letter(database_url, made["id"], flow_id)

    listed = await page(service, keys["admin"], "/webhooks")
    assert 'href="/webhooks"' in listed
    assert 'aria-current="page">Webhooks' in listed
    assert "https://hooks.example.com/in" in listed
    assert "FlowFailed, NodeFailed" in listed
    assert "&lt;b&gt;pager&lt;/b&gt;" in listed
    assert "<b>pager</b>" not in listed
    assert ">failing<" in listed
    assert "17 failed attempts" in listed
    assert "1 dead letter<" in listed
    assert 'data-action="pause"' in listed
    assert 'data-action="delete"' in listed
    assert 'id="create-form"' in listed
    assert made["secret"] not in listed

    detail = await page(service, keys["admin"], f"/webhooks/{made['id']}")
    assert f'href="/flows/{flow_id}"' in detail
    assert ">4242<" in detail
    assert "<script>alert" not in detail
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in detail
    assert "y" * 1000 not in detail  # cut
    assert 'data-resend="4242"' in detail
    assert 'id="resend-all"' in detail
    assert 'id="replay-form"' in detail
    assert 'data-action="secret"' in detail
    assert made["secret"] not in detail

    seen = await page(service, keys["operator"], f"/webhooks/{made['id']}")
    assert 'data-resend="4242"' in seen
    assert 'id="replay-form"' in seen
    assert "data-action=" not in seen
    assert 'id="create-form"' not in await page(service, keys["operator"], "/webhooks")

    for path in ("/webhooks", f"/webhooks/{made['id']}"):
        watched = await page(service, keys["viewer"], path)
        for offered in ("data-action=", "data-resend", "resend-all", "replay-form", "create-form"):
            assert offered not in watched, (path, offered)
    assert "https://hooks.example.com/in" in await page(service, keys["viewer"], "/webhooks")


async def test_another_tenants_subscription_is_not_on_its_pages(
    make_service: MakeService, database_url: str
) -> None:
    service, keys = await _service(make_service, database_url)
    made = await make(service, keys["admin"])
    theirs = await page(service, keys["other"], "/webhooks")
    assert made["id"] not in theirs
    assert "No webhook subscription yet" in theirs
    await page(service, keys["other"], f"/webhooks/{made['id']}", 404)
    await page(service, keys["admin"], "/webhooks/not-an-id", 400)
    # A deleted one is gone from its own tenant's pages too.
    await service.client.delete(f"{HOOKS}/{made['id']}", headers=bearer(keys["admin"]))
    await page(service, keys["admin"], f"/webhooks/{made['id']}", 404)
    assert made["id"] not in await page(service, keys["admin"], "/webhooks")
