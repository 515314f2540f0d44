"""The Activity page: what actors did, newest first, from the log; filters, keyset pages, bad
input, and above all that a tenant's viewer never sees another tenant's activity."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import pytest

from flowlog.api import keys
from flowlog.console.activity import ActivityQuery, activity
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import DEFINITIONS, A, B, Client, create, ok, post, wait_status

PAGE = "/activity"


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def page_of(client: Client, headers: dict[str, str] | None = None, **params: Any) -> str:
    answer = await client.get(PAGE, params=params, headers=headers)
    assert answer.status == 200, await answer.text()
    return await answer.text()


def positions(html: str) -> list[int]:
    return [int(p) for p in re.findall(r'data-position="(\d+)"', html)]


def cells(html: str, label: str) -> list[str]:
    """The text of every cell of one column (tags dropped)."""
    found = re.findall(rf'<td[^>]*data-label="{label}">(.*?)</td>', html, re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in found]


async def two_tenants(service: Service) -> tuple[str, str]:
    """A flow of tenant-a's (by alice) and one of tenant-b's (by bob), both finished."""
    mine = await create(service.client, headers=A, biz_id="alice-biz")
    theirs = await create(service.client, headers=B, biz_id="bob-biz")
    await wait_status(service.client, mine, "Finished", headers=A)
    await wait_status(service.client, theirs, "Finished", headers=B)
    return mine, theirs


async def test_lists_what_actors_did_newest_first(guarded: Service) -> None:
    mine, _ = await two_tenants(guarded)
    html = await page_of(guarded.client, A)
    assert 'aria-current="page">Activity' in html
    shown = positions(html)
    assert shown == sorted(shown, reverse=True)
    assert len(shown) == len(set(shown))
    actors = cells(html, "Actor")
    assert "token:alice" in actors
    assert any(actor.startswith("reactor:") for actor in actors)
    assert cells(html, "Action")[-2:] == ["FlowStarted", "FlowCreated"]  # the oldest last
    assert f'href="/flows/{mine}"' in html
    assert "Tenant</th>" not in html  # one tenant's viewer: no tenant column, no tenant filter
    assert 'name="tenant"' not in html


async def test_a_tenant_never_sees_another_tenants_activity(guarded: Service) -> None:
    mine, theirs = await two_tenants(guarded)
    registered = {"name": "bobs", "nodes": {"start": {"name": "s", "executor": {"type": "noop"}}}}
    await ok(await post(guarded.client, DEFINITIONS, registered, B))
    client = guarded.client
    for params in ({}, {"actor": "token:bob"}, {"type": "DefinitionRegistered"},
                   {"tenant": "tenant-a"}, {"pageSize": "100"}):  # fmt: skip
        html = await page_of(client, A, **params)
        assert theirs not in html
        assert "token:bob" not in html.replace('value="token:bob"', "")
        assert "bobs" not in html
        assert "tenant-b" not in html
    html = await page_of(client, A, actor="token:bob")
    assert positions(html) == []
    for other in ("tenant-b", "TENANT-A", "tenant-a "):
        answer = await client.get(PAGE, params={"tenant": other}, headers=A)
        assert answer.status == 400
        text = await answer.text()
        assert theirs not in text
        assert "Traceback" not in text
    bobs = await page_of(client, B)
    assert theirs in bobs
    assert mine not in bobs
    assert 'href="/definitions/bobs"' in bobs


async def test_a_viewer_of_every_tenant_sees_and_filters_all(service: Service) -> None:
    flow_id = await create(service.client)
    await wait_status(service.client, flow_id, "Finished")
    pool = service.app[keys.ENGINE].pool
    async with pool.acquire() as conn:  # streams of kinds the page does not know: no tenant's
        await conn.execute(
            "INSERT INTO events (stream_id, version, type, data, metadata) VALUES "
            "('key-k1', 1, 'KeyCreated', '{}', '{\"actor\": \"oidc:admin\", "
            '"reason": "for the CI"}\')'
        )
    html = await page_of(service.client)
    assert "Tenant</th>" in html
    assert 'name="tenant"' in html
    assert '<option value="oidc:admin">' in html
    assert '<option value="anonymous">' in html
    assert "oidc:admin" in cells(html, "Actor")
    assert "for the CI" in cells(html, "Reason")
    assert "key k1" in cells(html, "On")
    only = await page_of(service.client, actor="oidc:admin")
    assert cells(only, "Action") == ["KeyCreated"]
    assert cells(only, "Tenant") == ["shared"]
    assert positions(await page_of(service.client, tenant="tenant-a")) == []
    assert len(positions(await page_of(service.client, tenant=""))) > 1  # empty: any
    created = await page_of(service.client, type="FlowCreated")
    assert cells(created, "Action") == ["FlowCreated"]
    assert cells(created, "Actor") == ["anonymous"]
    assert positions(await page_of(service.client, **{"from": "2999-01-01T00:00:00"})) == []
    assert positions(await page_of(service.client, to="2000-01-01T00:00:00")) == []
    assert len(positions(await page_of(service.client, **{"from": "2000-01-01T00:00"}))) > 1


async def test_pages_go_back_by_position_without_gaps(service: Service) -> None:
    for n in range(6):
        await create(service.client, start=False, biz_id=f"b-{n}")
    pool = service.app[keys.ENGINE].pool
    everything = [r["position"] for r in await pool.fetch(
        "SELECT position FROM events ORDER BY position DESC")]  # fmt: skip
    seen: list[int] = []
    html = await page_of(service.client, pageSize="25")
    while True:
        seen += positions(html)
        older = re.search(r'href="(/activity\?[^"]+)" rel="next"', html)
        if older is None:
            break
        html = await page_of(service.client, **dict(_params(older.group(1))))
    assert seen == everything

    walked: list[int] = []  # a walk of at most 3 events a page: the page says where it stopped
    query = ActivityQuery.model_validate({"type": "FlowCreated", "pageSize": 25})
    while True:
        found = await activity(pool, query, None, examined=3)
        walked += [a.position for a in found.actions]
        if found.older is None:
            break
        assert found.searched_to is None or found.searched_to.position == found.older
        query = query.model_copy(update={"before": found.older})
    created = await pool.fetch("SELECT position FROM events WHERE type = 'FlowCreated'")
    assert walked == sorted((r["position"] for r in created), reverse=True)


def _params(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(url.replace("&amp;", "&")).query)


@pytest.mark.parametrize(
    "query",
    [
        "pageSize=7",
        "pageSize=many",
        "before=0",
        "before=-5",
        "before=99999999999999999999999",
        "from=yesterday",
        "to=1700000000",
        "actor=token%00alice",
        "type=Flow%00Created",
        "tenant=a%00b",
        "actor=" + "x" * 301,
        "color=blue",
        "actor=%ff",
    ],
)
async def test_bad_input_is_a_400_page(service: Service, query: str) -> None:
    answer = await service.client.get(f"{PAGE}?{query}")
    assert answer.status == 400, query
    text = await answer.text()
    assert "Traceback" not in text
    assert "<!doctype html>" in text


async def test_the_fragment_answers_the_rows_and_the_next_page(service: Service) -> None:
    for n in range(3):
        await create(service.client, start=False, biz_id=f"b-{n}")
    answer = await ok_json(service, "/console/activity?pageSize=25")
    assert answer["older"] is None
    logged = await service.app[keys.ENGINE].pool.fetchval("SELECT count(*) FROM events")
    assert answer["rows"].count("<tr data-position") == logged  # code definitions' too
    bad = await service.client.get("/console/activity?before=x")
    assert bad.status == 400


async def ok_json(service: Service, path: str) -> dict[str, Any]:
    answer = await service.client.get(path)
    assert answer.status == 200, await answer.text()
    found: dict[str, Any] = await answer.json()
    return found


async def test_the_runtime_role_reads_the_tenant_of_every_kind(
    guarded: Service, runtime_url: str
) -> None:
    """event_tenant() as the service runs it (the runtime role, not the owner)."""
    mine, _ = await two_tenants(guarded)
    conn = await asyncpg.connect(runtime_url)
    try:
        found = await conn.fetchval("SELECT event_tenant('flow-' || $1::text)", mine)
        assert found == "tenant-a"
        assert await conn.fetchval("SELECT event_tenant('definition-backup')") is None
        assert await conn.fetchval("SELECT event_tenant('schedule-none')") is None
        assert await conn.fetchval("SELECT event_tenant('key-x')") is None
    finally:
        await conn.close()
