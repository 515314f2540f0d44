"""Bearer tokens and tenants: without a valid token only the open paths answer, and a tenant
neither sees nor changes another tenant's flows (they answer 404, as unknown flows do)."""

from __future__ import annotations

from typing import Any

import pytest

from flowlog.workflow.errors import Code
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import (
    DEFINITIONS,
    FLOWS,
    NO_FLOW,
    A,
    B,
    create,
    detail,
    events,
    ok,
    post,
    refused,
    total,
    wait_status,
)


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


CLOSED = [
    ("GET", FLOWS),
    ("GET", FLOWS + "some-flow"),
    ("POST", FLOWS),
    ("POST", FLOWS + "start"),
    ("POST", FLOWS + "stop"),
    ("POST", FLOWS + "cancel"),
    ("POST", FLOWS + "context"),
    ("POST", FLOWS + "retry"),
    ("GET", FLOWS + "some-flow/events"),
    ("GET", FLOWS + "some-flow/state"),
    ("GET", FLOWS + "some-flow/events/stream"),
    ("GET", DEFINITIONS),
    ("GET", DEFINITIONS + "/backup"),
    ("POST", DEFINITIONS),
    ("GET", "/no/such/route"),
]


async def test_without_a_valid_token_every_route_is_401(guarded: Service) -> None:
    for authorization in (None, "Bearer wrong", "Bearer ", "Basic dG9rZW4tYTo=", "token-a",
                          "Bearer token-a-and-more", "Bearer token-"):  # fmt: skip
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in CLOSED:
            body = {"flowName": "backup", "bizId": "", "bizType": ""} if method == "POST" else None
            answer = await guarded.client.request(method, path, json=body, headers=headers)
            assert answer.headers["WWW-Authenticate"] == "Bearer", path
            refusal = await refused(answer, 401, Code.UNAUTHORIZED)
            assert refusal["data"] == {}
    # Nothing was created by the refused POSTs.
    assert await total(guarded.client, A) == 0
    assert await total(guarded.client, B) == 0


async def test_the_bearer_scheme_is_case_blind(guarded: Service) -> None:
    """RFC 9110: the authentication scheme is case-insensitive; the token is not."""
    for authorization in ("bearer token-a", "BEARER token-a", "Bearer  token-a "):
        listed = await guarded.client.get(FLOWS, headers={"Authorization": authorization})
        await ok(listed, paged=True)
    answer = await guarded.client.get(FLOWS, headers={"Authorization": "bearer TOKEN-A"})
    await refused(answer, 401, Code.UNAUTHORIZED)


async def test_open_paths_need_no_token(guarded: Service) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"):
        answer = await guarded.client.get(path)
        assert answer.status == 200, await answer.text()
        assert "WWW-Authenticate" not in answer.headers
        await answer.read()


async def test_a_token_acts_for_its_tenant(guarded: Service) -> None:
    client = guarded.client
    answer = await post(
        client, FLOWS, {"flowName": "backup", "bizId": "b", "bizType": "t", "start": True}, A
    )
    data = await ok(answer)
    flow_id = data["workFlowId"]
    assert data["info"]["tenantId"] == "tenant-a"
    await wait_status(client, flow_id, {"Finished"}, headers=A)
    history = await events(client, flow_id, A)
    assert history[0]["actor"] == "token:alice"
    assert history[0]["data"]["tenant_id"] == "tenant-a"
    assert history[0]["data"]["context"]["tenantId"] == "tenant-a"
    assert history[0]["data"]["context"]["userId"] == "token:alice"
    listed = await ok(await client.get(FLOWS, headers=A), paged=True)
    assert [f["id"] for f in listed["data"]["workFlows"]] == [flow_id]


async def test_a_tenant_cannot_see_or_touch_another_tenants_flows(guarded: Service) -> None:
    client = guarded.client
    theirs = await create(client, "fussy", start=False, headers=A)
    mine = await create(client, "backup", start=False, headers=B)
    before = await events(client, theirs, A)

    # Not listed, not counted, whatever the filters.
    listed = await ok(await client.get(FLOWS, headers=B), paged=True)
    assert [f["id"] for f in listed["data"]["workFlows"]] == [mine]
    assert listed["page"]["total"] == 1
    assert await total(client, B, flowName="fussy") == 0
    assert await total(client, B, status="Initializing") == 1
    assert await total(client, B, bizId="biz-1") == 1
    assert await total(client, A) == 1

    # Every route that names the flow answers as if it did not exist.
    for path in (FLOWS + theirs, f"{FLOWS}{theirs}/events", f"{FLOWS}{theirs}/state",
                 f"{FLOWS}{theirs}/events/stream"):  # fmt: skip
        await refused(await client.get(path, headers=B), 404, Code.FLOW_NOT_FOUND)
    extras: list[tuple[str, dict[str, Any]]] = [
        ("start", {}),
        ("stop", {"reason": "x"}),
        ("cancel", {"reason": "x"}),
        ("context", {"key": "ok", "value": True}),
        ("retry", {"context": {"ok": True}}),
    ]
    for command, extra in extras:
        answer = await post(client, FLOWS + command, {"workFlowId": theirs, **extra}, B)
        body = await refused(answer, 404, Code.FLOW_NOT_FOUND)
        assert body["message"] == f"workflow {theirs} does not exist"

    # The same message as for a flow that does not exist at all: nothing leaks.
    unknown = await refused(await client.get(FLOWS + NO_FLOW, headers=B), 404, Code.FLOW_NOT_FOUND)
    assert unknown["message"] == f"workflow {NO_FLOW} does not exist"

    # Nothing changed.
    assert await events(client, theirs, A) == before
    assert (await detail(client, theirs, A))["info"]["status"] == "Initializing"

    # Its owner can still do all of it.
    await ok(await post(client, FLOWS + "start", {"workFlowId": theirs}, A))
    await wait_status(client, theirs, {"Error"}, headers=A)


async def test_without_tokens_the_service_is_open_and_untenanted(service: Service) -> None:
    flow_id = await create(service.client, start=False)
    assert (await detail(service.client, flow_id))["info"]["tenantId"] == ""
    # A token sent to an open service is not checked, and scopes nothing.
    assert (await detail(service.client, flow_id, B))["info"]["id"] == flow_id
    assert await total(service.client, {"Authorization": "Bearer whatever"}) == 1
