"""POST /api/v1/workflow/bulk: one action on many flows, each flow's outcome reported, none
refused silently, each event recorded with the caller and the reason."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowlog.workflow.errors import Code
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import (
    FLOWS,
    NO_FLOW,
    A,
    B,
    Client,
    create,
    events,
    ok,
    post,
    refused,
    status_of,
    wait_status,
)

BULK = FLOWS + "bulk"


async def bulk(client: Client, body: dict[str, Any], headers: Any = None) -> dict[str, Any]:
    data: dict[str, Any] = await ok(await post(client, BULK, body, headers))
    assert data["succeeded"] + data["failed"] == len(data["results"])
    return data


async def test_each_named_flow_gets_its_own_outcome_in_order(service: Service) -> None:
    client = service.client
    running = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)
    finished = await create(client, "backup")
    await wait_status(client, finished, {"Finished"})
    waiting = await create(client, "backup", start=False)
    named = [running, finished, NO_FLOW, waiting]

    data = await bulk(client, {"action": "stop", "workFlowIds": named, "reason": "window"})
    assert data["action"] == "stop"
    assert [r["workFlowId"] for r in data["results"]] == named
    outcome = {r["workFlowId"]: r for r in data["results"]}
    assert outcome[running]["code"] == 0
    assert outcome[running]["message"] == "OK"
    assert outcome[running]["status"] in {"Processing", "Stopped"}  # the node finishes first
    assert outcome[finished]["code"] == Code.STOP_FAILED
    assert outcome[finished]["status"] is None
    assert outcome[NO_FLOW]["code"] == Code.FLOW_NOT_FOUND
    assert outcome[waiting]["code"] == 0
    assert (data["succeeded"], data["failed"]) == (2, 2)
    assert data["nextCursor"] is None

    for flow_id in (running, waiting):
        stopped = [e for e in await events(client, flow_id) if e["type"] == "FlowStopped"]
        assert len(stopped) == 1
        assert stopped[0]["reason"] == "window"
        assert stopped[0]["actor"] == "anonymous"
    assert await status_of(client, finished) == "Finished"  # refused: nothing changed
    service.gate.opened.set()
    await wait_status(client, running, {"Stopped"})


async def test_a_filter_is_walked_a_page_at_a_time_with_its_cursor(client: Client) -> None:
    created = [await create(client, "backup", start=False, biz_id=f"b-{i}") for i in range(5)]
    other = await create(client, "backup", start=False, biz_type="host")
    selection = {"flowName": "backup", "bizType": "cluster", "status": "Initializing"}
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        body: dict[str, Any] = {"action": "start", "filter": selection, "limit": 2}
        if cursor:
            body["cursor"] = cursor
        data = await bulk(client, body)
        assert all(r["code"] == 0 for r in data["results"])
        seen += [r["workFlowId"] for r in data["results"]]
        cursor = data["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))  # newest first, each once
    for flow_id in created:
        await wait_status(client, flow_id, {"Finished"})
    assert await status_of(client, other) == "Initializing"


async def test_retry_applies_the_context_changes_to_each_flow(client: Client) -> None:
    failing = [await create(client, "fussy") for _ in range(3)]
    for flow_id in failing:
        await wait_status(client, flow_id, {"Error"})
    data = await bulk(
        client,
        {"action": "retry", "workFlowIds": failing, "context": {"ok": True}, "reason": "fixed"},
    )
    assert data["succeeded"] == 3
    for flow_id in failing:
        await wait_status(client, flow_id, {"Finished"})
        retried = [e for e in await events(client, flow_id) if e["type"] == "FlowRetried"]
        assert retried[0]["reason"] == "fixed"


async def test_cancel_many_at_once(service: Service) -> None:
    client = service.client
    flows = [await create(client, "backup", start=False) for _ in range(12)]
    data = await bulk(client, {"action": "cancel", "workFlowIds": flows, "reason": "cleanup"})
    assert data["succeeded"] == 12
    assert {r["status"] for r in data["results"]} == {"Canceled"}


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def test_a_tenant_acts_only_on_its_own_flows(guarded: Service) -> None:
    client = guarded.client
    mine = await create(client, "backup", start=False, headers=A)
    theirs = await create(client, "backup", start=False, headers=B)
    data = await bulk(
        client, {"action": "cancel", "workFlowIds": [mine, theirs], "reason": "x"}, headers=A
    )
    codes = {r["workFlowId"]: r["code"] for r in data["results"]}
    assert codes == {mine: 0, theirs: Code.FLOW_NOT_FOUND}
    assert await status_of(client, theirs, B) == "Initializing"
    cancel = [e for e in await events(client, mine, A) if e["type"] == "FlowCanceled"]
    assert cancel[0]["actor"] == "token:alice"

    other = await create(client, "backup", start=False, headers=B)
    by_filter = await bulk(client, {"action": "start", "filter": {}}, headers=A)
    assert [(r["workFlowId"], r["code"]) for r in by_filter["results"]] == [
        (mine, Code.START_FAILED)  # a canceled flow cannot start; B's are not even selected
    ]
    by_filter = await bulk(client, {"action": "start", "filter": {}}, headers=B)
    assert {r["workFlowId"] for r in by_filter["results"]} == {theirs, other}


@pytest.mark.parametrize(
    "body",
    [
        {"action": "stop"},
        {"action": "stop", "workFlowIds": [NO_FLOW], "filter": {}},
        {"action": "stop", "workFlowIds": []},
        {"action": "stop", "workFlowIds": [NO_FLOW, NO_FLOW]},
        {"action": "stop", "workFlowIds": [NO_FLOW], "context": {"k": 1}},
        {"action": "stop", "workFlowIds": [NO_FLOW], "cursor": "abc"},
        {"action": "stop", "filter": {}, "cursor": "not-a-cursor"},
        {"action": "stop", "filter": {"status": "Sleeping"}},
        {"action": "pause", "workFlowIds": [NO_FLOW]},
        {"action": "retry", "workFlowIds": [NO_FLOW], "context": {"tenantId": "b"}},
        {
            "action": "stop",
            "workFlowIds": [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1001)],
        },
        {"action": "stop", "workFlowIds": [NO_FLOW, "no-such-flow"]},  # not a flow id
        {"action": "stop", "filter": {}, "limit": 0},
    ],
)
async def test_bad_bulk_requests_are_refused_whole(client: Client, body: dict[str, Any]) -> None:
    flow_id = await create(client, "backup", start=False)
    await refused(await post(client, BULK, body), 400, Code.BAD_INPUT)
    assert await status_of(client, flow_id) == "Initializing"
