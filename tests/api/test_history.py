"""A flow's history: its events paged, its state as of a version, and the live SSE stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowlog.api import sse
from flowlog.workflow.errors import Code
from tests.api.conftest import Service
from tests.api.helpers import (
    FLOWS,
    NO_FLOW,
    Client,
    create,
    events,
    next_message,
    ok,
    refused,
    wait_for,
    wait_status,
)


async def test_events_are_paged_oldest_first(client: Client) -> None:
    flow_id = await create(client, "backup", context={"clusterId": "c-1"})
    await wait_status(client, flow_id, {"Finished"})
    history = await events(client, flow_id)
    assert [e["version"] for e in history] == list(range(1, len(history) + 1))
    assert [e["type"] for e in history] == [
        "FlowCreated", "FlowStarted",
        "NodeStarted", "NodeSucceeded", "NodeStarted", "NodeSucceeded",
        "NodeStarted", "NodeSucceeded", "FlowFinished",
    ]  # fmt: skip
    positions = [e["position"] for e in history]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    for event in history:
        assert set(event) == {"version", "position", "time", "type", "actor", "reason",
                              "requestId", "traceId", "summary", "data", "metadata"}  # fmt: skip
        assert event["actor"] == event["metadata"]["actor"]
        assert event["traceId"] == event["metadata"].get("trace_id")
    assert [e["summary"] for e in history][2:4] == [
        "node backup started", "node backup succeeded, next backupDone"
    ]  # fmt: skip
    assert history[0]["actor"] == "anonymous"
    assert history[2]["actor"].startswith("reactor:")
    assert history[0]["data"]["flow_id"] == flow_id
    assert history[2]["data"] == {
        "node_id": f"{flow_id}.1", "key": "start", "name": "backup", "kind": "sync", "attempt": 1,
    }  # fmt: skip

    pages = []
    for page in (1, 2, 3, 4):
        body = await ok(
            await client.get(f"{FLOWS}{flow_id}/events", params={"page": page, "pageSize": 4}),
            paged=True,
        )
        assert body["page"] == {"page": page, "pageSize": 4, "total": 9}
        pages.append(body["data"]["events"])
    assert [[e["version"] for e in p] for p in pages] == [[1, 2, 3, 4], [5, 6, 7, 8], [9], []]
    assert [e for p in pages for e in p] == history

    default = await ok(await client.get(f"{FLOWS}{flow_id}/events"), paged=True)
    assert default["page"] == {"page": 1, "pageSize": 50, "total": 9}


async def test_state_as_of_each_version(client: Client) -> None:
    flow_id = await create(client, "backup", context={"clusterId": "c-1"})
    await wait_status(client, flow_id, {"Finished"})
    history = await events(client, flow_id)

    async def state(**params: Any) -> dict[str, Any]:
        found: dict[str, Any] = await ok(await client.get(f"{FLOWS}{flow_id}/state", params=params))
        return found

    first = await state(version=1)
    assert first["version"] == 1
    assert first["status"] == "Initializing"
    assert first["currentNode"] is None
    assert first["nodes"] == []
    assert first["context"] == {"traceId": first["context"]["traceId"], "userId": "anonymous",
                                "tenantId": "", "clusterId": "c-1"}  # fmt: skip

    third = await state(version=3)  # the first NodeStarted
    assert (third["status"], third["currentNode"]) == ("Processing", "backup")
    assert [(n["name"], n["status"], n["endTime"]) for n in third["nodes"]] == [
        ("backup", "Processing", None)
    ]
    fourth = await state(version=4)
    assert fourth["currentNode"] is None
    assert [(n["name"], n["status"]) for n in fourth["nodes"]] == [("backup", "Finished")]
    assert fourth["nodes"][0]["id"] == f"{flow_id}.1"

    latest = await state()
    assert latest["version"] == len(history)
    assert latest["status"] == "Finished"
    assert [n["name"] for n in latest["nodes"]] == ["backup", "updateBackupRecord", "end"]
    assert latest == await state(version=len(history))
    assert set(latest) == {
        "flowId", "name", "definitionVersion", "version", "updatedAt", "status", "currentNode",
        "nextNodeKey", "failedNodeKey", "errorCode", "errorMessage", "reason", "context", "nodes",
    }  # fmt: skip
    assert (latest["flowId"], latest["nextNodeKey"]) == (flow_id, None)
    assert third["nextNodeKey"] == "start"


async def test_state_beyond_the_last_version_is_refused(client: Client) -> None:
    flow_id = await create(client, start=False)
    answer = await client.get(f"{FLOWS}{flow_id}/state", params={"version": 2})
    body = await refused(answer, 400, Code.BAD_INPUT)
    assert "1 events" in body["message"]
    await refused(await client.get(f"{FLOWS}{flow_id}/state", params={"version": 0}), 400,
                  Code.BAD_INPUT)  # fmt: skip
    await refused(await client.get(f"{FLOWS}{flow_id}/state", params={"version": "x"}), 400,
                  Code.BAD_INPUT)  # fmt: skip


# -- the SSE stream --------------------------------------------------------------------------


async def test_the_stream_sends_the_history_then_live_events_until_the_end(
    service: Service,
) -> None:
    client = service.client
    flow_id = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)
    received: list[dict[str, Any]] = []
    async with client.get(f"{FLOWS}{flow_id}/events/stream") as stream:
        assert stream.status == 200
        assert stream.content_type == "text/event-stream"
        assert stream.headers["Cache-Control"] == "no-cache"
        assert "X-Request-Id" in stream.headers
        # The history so far: up to the NodeStarted of the held node.
        while (
            not received
            or received[-1]["event"] != "NodeStarted"
            or (received[-1]["data"]["data"]["name"] != "hold")
        ):
            message = await next_message(stream)
            assert message is not None
            received.append(message)
        service.gate.opened.set()  # now the rest happens while the stream is open
        while received[-1]["event"] != "FlowFinished":
            message = await next_message(stream)
            assert message is not None
            received.append(message)
        assert await next_message(stream) is None  # the server ended the stream
    history = await events(client, flow_id)
    assert [int(m["id"]) for m in received] == list(range(1, len(history) + 1))
    assert [m["event"] for m in received] == [e["type"] for e in history]
    for message, event in zip(received, history, strict=True):
        assert message["data"]["version"] == event["version"]
        assert message["data"]["type"] == event["type"]
        assert message["data"]["data"] == event["data"]
        assert message["data"]["metadata"] == event["metadata"]


async def _all_messages(client: Client, path: str, **kwargs: Any) -> list[dict[str, Any]]:
    messages = []
    async with client.get(path, **kwargs) as stream:
        assert stream.status == 200
        while (message := await next_message(stream)) is not None:
            messages.append(message)
    return messages


async def test_the_stream_of_an_ended_flow_is_its_history(client: Client) -> None:
    flow_id = await create(client, "fussy")
    await wait_status(client, flow_id, {"Error"})
    history = await events(client, flow_id)
    path = f"{FLOWS}{flow_id}/events/stream"
    messages = await _all_messages(client, path)
    assert [m["event"] for m in messages] == [e["type"] for e in history]
    assert messages[-1]["event"] == "FlowFailed"

    # Resuming after an event id (as an EventSource reconnects) sends only what follows.
    assert len(history) == 5
    resumed = await _all_messages(client, path, headers={"Last-Event-ID": "3"})
    assert [int(m["id"]) for m in resumed] == [4, 5]
    # page/pageSize say which events the client already has.
    skipped = await _all_messages(client, path, params={"page": 2, "pageSize": 2})
    assert [int(m["id"]) for m in skipped] == [3, 4, 5]

    # A client that has seen the end (an EventSource reconnects when the stream closes) is
    # told there is nothing more to wait for: 204, the status that stops an EventSource.
    for seen in ({"headers": {"Last-Event-ID": str(len(history))}},
                 {"params": {"page": 2, "pageSize": len(history)}}):  # fmt: skip
        async with client.get(path, **seen) as again:
            assert again.status == 204
            assert await asyncio.wait_for(again.read(), 10) == b""


async def test_the_stream_of_a_retried_flow_goes_past_its_first_error(client: Client) -> None:
    """A flow that ended in Error and was retried has not ended: its stream runs on to the
    retry's end, not to the first FlowFailed of its history."""
    flow_id = await create(client, "fussy")
    await wait_status(client, flow_id, {"Error"})
    retry = {"workFlowId": flow_id, "context": {"ok": True}}
    await ok(await client.post(FLOWS + "retry", json=retry))
    await wait_status(client, flow_id, {"Finished"})
    messages = await _all_messages(client, f"{FLOWS}{flow_id}/events/stream")
    kinds = [m["event"] for m in messages]
    assert "FlowFailed" in kinds
    assert "FlowRetried" in kinds
    assert kinds[-1] == "FlowFinished"


async def test_the_stream_of_a_canceled_flow_ends_with_the_cancel(client: Client) -> None:
    flow_id = await create(client, start=False)
    await ok(await client.post(FLOWS + "cancel", json={"workFlowId": flow_id}))
    messages = await _all_messages(client, f"{FLOWS}{flow_id}/events/stream")
    assert [m["event"] for m in messages] == ["FlowCreated", "CancelRequested", "FlowCanceled"]


async def test_an_idle_stream_keeps_alive_and_a_closed_one_is_let_go(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE", 0.05)
    client = service.client
    listener = service.engine.listener
    idle = len(listener._waiters)
    flow_id = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)
    stream = await client.get(f"{FLOWS}{flow_id}/events/stream")
    try:
        assert stream.status == 200
        seen = []
        while (message := await next_message(stream)) is not None and "comment" not in message:
            seen.append(message["event"])
        assert message == {"comment": "keep-alive"}
        assert seen[-1] == "NodeStarted"
        assert len(listener._waiters) == idle + 1
    finally:
        stream.close()

    async def let_go() -> bool:
        return len(listener._waiters) == idle

    await wait_for(let_go)


async def test_stream_errors_are_enveloped(client: Client) -> None:
    await refused(await client.get(f"{FLOWS}{NO_FLOW}/events/stream"), 404, Code.FLOW_NOT_FOUND)
    await refused(await client.get(f"{FLOWS}nope/events/stream"), 400, Code.BAD_INPUT)
    flow_id = await create(client, start=False)
    answer = await client.get(f"{FLOWS}{flow_id}/events/stream", params={"pageSize": 0})
    await refused(answer, 400, Code.BAD_INPUT)


async def test_an_open_stream_ends_when_the_server_shuts_down(service: Service) -> None:
    client = service.client
    flow_id = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)
    stream = await client.get(f"{FLOWS}{flow_id}/events/stream")
    try:
        seen = []
        while (message := await next_message(stream)) is not None:
            seen.append(message["event"])
            if message["event"] == "NodeStarted" and message["data"]["data"]["name"] == "hold":
                break
        # Shutdown's first step; the server then waits for handlers, which must not include
        # a stream of a flow that may not end for days.
        await service.app.shutdown()
        assert await next_message(stream, within=5) is None
    finally:
        stream.close()
