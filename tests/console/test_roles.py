"""The console offers only what the session's role allows (the buttons are absent, not
broken), and says who is logged in, with which role; a superadmin's pages say "All tenants"."""

from __future__ import annotations

from flowlog.access.roles import Role
from tests.api.conftest import MakeService
from tests.api.helpers import create
from tests.api.test_keys import bearer, first_key, until
from tests.console.test_access import session_of


async def test_a_viewer_is_offered_no_action_and_an_operator_is(
    make_service: MakeService, database_url: str
) -> None:
    service = await make_service()
    viewer = await first_key(database_url, name="watcher", role=Role.VIEWER)
    operator = await first_key(database_url, name="hands", role=Role.OPERATOR)
    boss = await first_key(database_url, tenant="ops", name="boss", role=Role.SUPERADMIN)

    async def known() -> bool:
        return (await service.client.get("/", headers=bearer(boss))).status == 200

    await until(known)
    client = service.client
    flow_id = await create(client, headers=bearer(operator), start=False)

    async def page(key: str, path: str) -> str:
        answer = await client.get(path, headers=bearer(key))
        assert answer.status == 200, path
        return await answer.text()

    seen = await page(viewer, f"/flows/{flow_id}")
    assert "data-action=" not in seen
    assert "may watch this flow, not act on it" in seen
    assert '<span class="role" data-role="viewer">viewer</span>' in seen
    assert "watcher" in seen
    listed = await page(viewer, "/")
    assert 'id="bulk"' not in listed
    assert 'class="pick"' not in listed
    assert "All tenants" not in listed

    acted = await page(operator, f"/flows/{flow_id}")
    assert 'data-action="start"' in acted
    assert 'data-action="cancel"' in acted
    assert 'data-role="operator"' in acted
    assert 'id="bulk"' in await page(operator, "/")

    everywhere = await page(boss, "/")
    assert "All tenants" in everywhere
    assert 'data-role="superadmin"' in everywhere
    assert flow_id in everywhere  # another tenant's flow, seen by the installation's superadmin


async def test_a_session_made_with_a_revoked_key_ends_with_it(
    make_service: MakeService, database_url: str
) -> None:
    service = await make_service()
    admin = await first_key(database_url, name="root", role=Role.ADMIN)

    async def known() -> bool:
        return (await service.client.get("/api/v1/workflow/", headers=bearer(admin))).status == 200

    await until(known)
    made = await service.client.post(
        "/api/v1/keys", json={"name": "person", "role": "operator"}, headers=bearer(admin)
    )
    person = (await made.json())["data"]
    cookie = await session_of(service.client, person["key"])
    assert (await service.client.get("/", headers=cookie, allow_redirects=False)).status == 200
    revoked = await service.client.post(
        f"/api/v1/keys/{person['id']}/revoke", json={"reason": "left"}, headers=bearer(admin)
    )
    assert revoked.status == 200
    gone = await service.client.get("/", headers=cookie, allow_redirects=False)
    assert gone.status == 303
    assert gone.headers["Location"].startswith("/login")
