"""Calls and checks shared by the REST API tests."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

import orjson
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
Headers = Mapping[str, str] | None

A = {"Authorization": "Bearer token-a"}
"""Tenant A's token (see conftest.TOKENS)."""
B = {"Authorization": "Bearer token-b"}

FLOWS = "/api/v1/workflow/"
NO_FLOW = "0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b"
"""A flow id as flowlog makes them, which no test's flow has: a flow that does not exist."""
DEFINITIONS = "/api/v1/workflow-definitions"


async def ok(response: ClientResponse, *, paged: bool = False) -> Any:
    """The answer's data, after checking it is 200 in the envelope."""
    text = await response.text()
    assert response.status == 200, text
    assert response.content_type == "application/json"
    body = orjson.loads(text)
    assert set(body) == (
        {"code", "message", "data", "page"} if paged else {"code", "message", "data"}
    )
    assert body["code"] == 0
    assert body["message"] == "OK"
    return body if paged else body["data"]


async def refused(response: ClientResponse, status: int, code: int) -> dict[str, Any]:
    """The error envelope, after checking its HTTP status and code, and that it tells nothing
    of the service's insides."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json", text
    body = orjson.loads(text)
    assert set(body) == {"code", "message", "data"}, body
    assert body["code"] == code, body
    assert code != 0
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["data"], dict)
    for leak in ("Traceback", 'File "', ".py", "asyncpg", "site-packages"):
        assert leak not in text, text
    envelope: dict[str, Any] = body
    return envelope


async def create(
    client: Client,
    flow_name: str = "backup",
    *,
    start: bool = True,
    context: Mapping[str, Any] | None = None,
    biz_id: str = "biz-1",
    biz_type: str = "cluster",
    headers: Headers = None,
) -> str:
    """Creates a flow over REST; returns its id."""
    body = {"flowName": flow_name, "bizId": biz_id, "bizType": biz_type, "start": start}
    if context is not None:
        body["context"] = dict(context)
    data = await ok(await client.post(FLOWS, json=body, headers=headers))
    flow_id: str = data["workFlowId"]
    return flow_id


async def detail(client: Client, flow_id: str, headers: Headers = None) -> dict[str, Any]:
    data: dict[str, Any] = await ok(await client.get(FLOWS + flow_id, headers=headers))
    return data


async def status_of(client: Client, flow_id: str, headers: Headers = None) -> str:
    status: str = (await detail(client, flow_id, headers))["info"]["status"]
    return status


async def wait_status(
    client: Client,
    flow_id: str,
    statuses: Collection[str],
    *,
    within: float = 10.0,
    headers: Headers = None,
) -> dict[str, Any]:
    """Polls the detail route until the flow is in one of ``statuses``; returns the detail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await detail(client, flow_id, headers)
        if found["info"]["status"] in statuses:
            return found
        assert loop.time() < deadline, f"flow {flow_id} stayed {found['info']['status']}"
        await asyncio.sleep(0.02)


async def wait_for(probe: Any, *, within: float = 10.0) -> None:
    """Polls an async ``probe()`` until it is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await probe():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def events(client: Client, flow_id: str, headers: Headers = None) -> list[dict[str, Any]]:
    """The flow's whole history."""
    body = await ok(
        await client.get(f"{FLOWS}{flow_id}/events", params={"pageSize": 500}, headers=headers),
        paged=True,
    )
    found: list[dict[str, Any]] = body["data"]["events"]
    assert body["page"]["total"] == len(found)
    return found


async def types(client: Client, flow_id: str, headers: Headers = None) -> list[str]:
    return [e["type"] for e in await events(client, flow_id, headers)]


async def total(client: Client, headers: Headers = None, **params: Any) -> int:
    """How many flows the list route counts (with these filters)."""
    body = await ok(await client.get(FLOWS, params=params, headers=headers), paged=True)
    count: int = body["page"]["total"]
    return count


async def post(client: Client, path: str, body: Any, headers: Headers = None) -> ClientResponse:
    return await client.post(
        path,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def next_message(response: ClientResponse, *, within: float = 10.0) -> dict[str, Any] | None:
    """The next Server-Sent Events message (``{"comment": ...}`` for a comment line), or None
    when the server has ended the stream."""
    fields: dict[str, Any] = {}
    while True:
        line = await asyncio.wait_for(response.content.readline(), within)
        if not line:
            assert not fields, f"the stream ended inside a message: {fields}"
            return None
        text = line.decode().rstrip("\n")
        if not text:
            if fields:
                return fields
            continue
        if text.startswith(":"):
            assert not fields
            return {"comment": text[1:].strip()}
        name, _, value = text.partition(": ")
        assert name in {"id", "event", "data"}, text
        fields[name] = orjson.loads(value) if name == "data" else value
