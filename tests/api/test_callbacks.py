"""Callback and timer nodes over REST: a JSON definition waits on the outside world, which
completes it with POST /api/v1/workflow/callback (errors refused in the envelope, changing
nothing), and waits on time."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import (
    DEFINITIONS,
    NO_FLOW,
    A,
    B,
    Client,
    create,
    detail,
    events,
    ok,
    post,
    refused,
    types,
    wait_for,
    wait_status,
)

CALLBACK = "/api/v1/workflow/callback"


def approval_spec(executor: dict[str, Any] | None = None, deadline: float = 60) -> dict[str, Any]:
    """prepare -> approve (a callback) -> apply; a failed approval goes to rejected."""
    return {
        "name": "change-approval",
        "nodes": {
            "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "approve"},
            "approve": {"name": "approve", "kind": "callback", "deadline": deadline,
                        "executor": executor or {"type": "noop"},
                        "success": "apply", "fail": "rejected"},
            "apply": {"name": "apply", "executor": {"type": "noop"}},
            "rejected": {"name": "rejected", "executor": {"type": "noop"}},
        },
    }  # fmt: skip


async def waiting_token(client: Client, flow_id: str, headers: Any = None) -> str:
    """The callback token an operator reads on the flow's detail, once the node waits."""

    async def waits() -> bool:
        return (await detail(client, flow_id, headers)).get("waiting") is not None

    await wait_for(waits)
    waiting = (await detail(client, flow_id, headers))["waiting"]
    assert waiting["kind"] == "callback"
    assert waiting["name"] == "approve"
    assert waiting["deadline"] is not None
    token: str = waiting["callbackToken"]
    return token


async def test_an_operator_completes_a_callback_with_the_token_from_the_detail(
    client: Client,
) -> None:
    await ok(await post(client, DEFINITIONS, approval_spec()))
    flow_id = await create(client, "change-approval")
    token = await waiting_token(client, flow_id)

    answer = await ok(await post(client, CALLBACK, {
        "token": token, "status": "success", "result": "approved in ticket 42",
        "context": {"approver": "dana"}, "reason": "change board said yes",
    }))  # fmt: skip
    assert answer["info"]["id"] == flow_id
    done = await wait_status(client, flow_id, {"Finished"})
    assert [n["name"] for n in done["nodes"]] == ["prepare", "approve", "apply"]
    assert done["nodes"][1]["result"] == "approved in ticket 42\n"
    assert done["waiting"] is None
    history = await events(client, flow_id)
    received = next(e for e in history if e["type"] == "CallbackReceived")
    assert received["data"]["status"] == "success"
    assert received["reason"] == "change board said yes"
    assert received["summary"].startswith("node approve completed by ")
    waited = next(e for e in history if e["type"] == "NodeWaiting")
    assert waited["summary"].startswith("node approve waiting for callback ")


async def test_bad_completions_are_refused_and_change_nothing(client: Client) -> None:
    await ok(await post(client, DEFINITIONS, approval_spec()))
    flow_id = await create(client, "change-approval")
    token = await waiting_token(client, flow_id)
    before = await types(client, flow_id)
    node_id = f"{flow_id}.2"
    for body, status, code in (
        ({"status": "success"}, 400, 40115),  # neither token nor ids
        ({"token": token, "workFlowId": flow_id, "nodeId": node_id, "status": "success"},
         400, 40115),
        ({"workFlowId": flow_id, "status": "success"}, 400, 40115),
        ({"token": token, "status": "maybe"}, 400, 40115),
        ({"token": token, "status": "success", "extra": 1}, 400, 40115),
        ({"token": token, "status": "success", "result": "nul \x00 here"}, 400, 40115),
        ({"token": token[:-3] + "xyz", "status": "success"}, 404, 40126),
        ({"token": "fl1.bm90.aGVsbG8", "status": "success"}, 404, 40126),
        ({"workFlowId": NO_FLOW, "nodeId": f"{NO_FLOW}.2", "status": "success"}, 404, 40111),
        ({"workFlowId": "no-such-flow", "nodeId": "no-such-flow.2", "status": "success"},
         400, 40115),  # not a flow id: no flow could have it
        ({"workFlowId": flow_id, "nodeId": f"{flow_id}.1", "status": "success"}, 409, 40127),
    ):  # fmt: skip
        await refused(await post(client, CALLBACK, body), status, code)
    assert await types(client, flow_id) == before

    await ok(await post(client, CALLBACK, {"workFlowId": flow_id, "nodeId": node_id,
                                           "status": "fail", "message": "no"}))  # fmt: skip
    await refused(await post(client, CALLBACK, {"token": token, "status": "success"}), 409, 40127)
    failed = await wait_status(client, flow_id, {"Error"})
    assert failed["nodes"][1]["errorCode"] == 40129
    assert failed["nodes"][1]["errorMessage"] == "no"


async def test_another_tenant_can_neither_see_nor_use_a_token(make_service: MakeService) -> None:
    guarded = await make_service(tokens=TOKENS)
    client = guarded.client
    await ok(await post(client, DEFINITIONS, approval_spec(), A))
    flow_id = await create(client, "change-approval", headers=A)
    token = await waiting_token(client, flow_id, A)
    await refused(await client.get(f"/api/v1/workflow/{flow_id}", headers=B), 404, 40111)
    await refused(await post(client, CALLBACK, {"token": token, "status": "success"}, B),
                  404, 40126)  # fmt: skip
    await refused(await post(client, CALLBACK, {"workFlowId": flow_id, "nodeId": f"{flow_id}.2",
                                                "status": "success"}, B), 404, 40111)  # fmt: skip
    await ok(await post(client, CALLBACK, {"token": token, "status": "success"}, A))
    await wait_status(client, flow_id, {"Finished"}, headers=A)


async def test_an_http_callback_node_hands_its_token_to_a_service_that_calls_back(
    service: Service,
) -> None:
    """The worked example of docs/workflows.md: the approval service gets the token in the
    node's request and completes the node later, over the API."""
    client = service.client
    received: list[dict[str, Any]] = []

    async def approvals(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"result": "approval requested"})

    outside = web.Application()
    outside.router.add_post("/approvals", approvals)
    server = TestServer(outside)
    await server.start_server()
    try:
        executor = {"type": "http", "url": str(server.make_url("/approvals"))}
        await ok(await post(client, DEFINITIONS, approval_spec(executor)))
        flow_id = await create(client, "change-approval", context={"change": "drop table"})

        async def asked() -> bool:
            return bool(received)

        await wait_for(asked)
        request = received[0]
        assert request["flowId"] == flow_id
        assert request["context"]["change"] == "drop table"
        await ok(await post(client, CALLBACK, {"token": request["callbackToken"],
                                               "status": "success"}))  # fmt: skip
        await wait_status(client, flow_id, {"Finished"})
    finally:
        await server.close()


async def test_a_json_timer_node_waits_and_the_detail_says_until_when(client: Client) -> None:
    spec = {
        "name": "quiet-period",
        "nodes": {
            "start": {"name": "quiet", "kind": "timer", "success": "go",
                      "executor": {"type": "sleep", "seconds": 1.0}},
            "go": {"name": "go", "executor": {"type": "noop"}},
        },
    }  # fmt: skip
    await ok(await post(client, DEFINITIONS, spec))
    flow_id = await create(client, "quiet-period")

    async def waits() -> bool:
        return (await detail(client, flow_id)).get("waiting") is not None

    await wait_for(waits)
    waiting = (await detail(client, flow_id))["waiting"]
    assert waiting["kind"] == "timer"
    assert waiting["wakeAt"] is not None
    assert waiting["callbackToken"] is None
    await wait_status(client, flow_id, {"Finished"})


async def test_definitions_with_misplaced_waiting_nodes_are_refused(client: Client) -> None:
    noop = {"type": "noop"}
    for node in (
        {"name": "t", "kind": "timer", "executor": noop},
        {"name": "t", "executor": {"type": "until", "contextKey": "k"}},
        {"name": "t", "executor": noop, "deadline": 5},
        {"name": "t", "kind": "callback", "executor": {"type": "sleep", "seconds": 1}},
        {"name": "t", "executor": {"type": "sleep", "seconds": 90_000}},
        {"name": "t", "kind": "timer", "executor": {"type": "until"}},
    ):
        answer = await post(client, DEFINITIONS, {"name": "bad", "nodes": {"start": node}})
        await refused(answer, 400, 40115 if node.get("executor") == {"type": "until"} else 40112)
    await asyncio.sleep(0)
