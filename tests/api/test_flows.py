"""The flow routes: the seed's list, detail, start and stop, and create, cancel, context and
retry, each through its success path (errors: test_errors.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from tests.api.conftest import Service
from tests.api.helpers import (
    FLOWS,
    Client,
    create,
    detail,
    events,
    ok,
    post,
    status_of,
    total,
    types,
    wait_for,
    wait_status,
)

INFO_FIELDS = {
    "id", "name", "bizId", "bizType", "status", "createTime", "updateTime", "deleteTime",
    "tenantId", "definitionVersion", "errorCode", "errorMessage",
}  # fmt: skip
NODE_FIELDS = {
    "id", "name", "parameters", "result", "status", "startTime", "endTime", "key", "attempt",
    "operationId", "errorCode", "errorMessage",
}  # fmt: skip
GO_ZERO = "0001-01-01T00:00:00Z"


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_create_and_start_runs_the_flow_to_finished(service: Service) -> None:
    client = service.client
    answer = await client.post(
        FLOWS,
        json={
            "flowName": "backup",
            "bizId": "cluster-7",
            "bizType": "cluster",
            "context": {"clusterId": "c-7", "nested": {"a": [1, 2]}},
            "start": True,
        },
        headers={"X-Request-Id": "req-create-1", "X-Trace-Id": "trace-1"},
    )
    assert answer.headers["X-Request-Id"] == "req-create-1"
    data = await ok(answer)
    flow_id = data["workFlowId"]
    info = data["info"]
    assert set(info) == INFO_FIELDS
    assert info["id"] == flow_id
    assert (info["name"], info["bizId"], info["bizType"]) == ("backup", "cluster-7", "cluster")
    assert info["status"] in {"Processing", "Finished"}
    assert info["definitionVersion"] == service.registry.get("backup").version
    assert info["deleteTime"] == GO_ZERO
    assert info["tenantId"] == ""
    assert (info["errorCode"], info["errorMessage"]) == (None, None)

    done = await wait_status(client, flow_id, {"Finished"})
    assert done["nodeNames"] == ["backup", "updateBackupRecord", "end"]
    nodes = done["nodes"]
    assert [n["name"] for n in nodes] == ["backup", "updateBackupRecord", "end"]
    assert [n["key"] for n in nodes] == ["start", "backupDone", "updateRecordDone"]
    assert [n["id"] for n in nodes] == [f"{flow_id}.1", f"{flow_id}.2", f"{flow_id}.3"]
    for node in nodes:
        assert set(node) == NODE_FIELDS
        assert node["status"] == "Finished"
        assert node["attempt"] == 1
        assert node["endTime"] != GO_ZERO
        assert when(node["startTime"]) <= when(node["endTime"])
    assert when(done["info"]["createTime"]) <= when(done["info"]["updateTime"])

    history = await events(client, flow_id)
    assert history[0]["type"] == "FlowCreated"
    assert history[0]["data"]["context"]["nested"] == {"a": [1, 2]}
    assert history[0]["metadata"]["request_id"] == "req-create-1"
    assert history[0]["metadata"]["trace_id"] == "trace-1"
    assert history[0]["actor"] == "anonymous"
    assert history[-1]["type"] == "FlowFinished"


async def test_a_flow_created_without_start_waits_until_started(client: Client) -> None:
    data = await ok(
        await client.post(FLOWS, json={"flowName": "backup", "bizId": "b", "bizType": "t"})
    )
    flow_id = data["workFlowId"]
    assert data["info"]["status"] == "Initializing"
    found = await detail(client, flow_id)
    assert found["info"]["status"] == "Initializing"
    assert found["nodes"] == []
    assert found["nodeNames"] == ["backup", "updateBackupRecord", "end"]
    assert await types(client, flow_id) == ["FlowCreated"]

    assert await ok(await client.post(FLOWS + "start", json={"workFlowId": flow_id})) == {}
    await wait_status(client, flow_id, {"Finished"})
    assert (await types(client, flow_id))[:2] == ["FlowCreated", "FlowStarted"]


async def test_start_of_a_running_flow_changes_nothing(service: Service) -> None:
    client = service.client
    flow_id = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)
    before = await events(client, flow_id)
    assert await ok(await client.post(FLOWS + "start", json={"workFlowId": flow_id})) == {}
    assert await events(client, flow_id) == before
    service.gate.opened.set()
    await wait_status(client, flow_id, {"Finished"})


async def test_list_in_the_seed_shape_filtered_and_paged(client: Client) -> None:
    first = await create(client, "backup", biz_id="b-1", biz_type="cluster", start=False)
    second = await create(client, "backup", biz_id="b-2", biz_type="cluster", start=False)
    third = await create(client, "fussy", biz_id="b-3", biz_type="host", start=False)
    await client.post(FLOWS + "cancel", json={"workFlowId": second})

    body = await ok(await client.get(FLOWS), paged=True)
    assert body["page"] == {"page": 1, "pageSize": 10, "total": 3}
    flows = body["data"]["workFlows"]
    assert [f["id"] for f in flows] == [third, second, first]  # newest first
    assert body["data"]["nextCursor"] is None

    async def ids(**params: str | int) -> list[str]:
        found = await ok(await client.get(FLOWS, params=params), paged=True)
        return [f["id"] for f in found["data"]["workFlows"]]

    assert await ids(flowName="backup") == [second, first]
    assert await ids(bizId="b-3") == [third]
    assert await ids(bizType="cluster") == [second, first]
    assert await ids(status="Canceled") == [second]
    assert await ids(status="Initializing", flowName="backup") == [first]
    assert await ids(flowName="nothing") == []
    assert await total(client, flowName="backup") == 2
    assert await total(client, bizId="b-3") == 1
    assert await total(client, status="Finished") == 0

    page1 = await ok(await client.get(FLOWS, params={"page": 1, "pageSize": 2}), paged=True)
    assert page1["page"] == {"page": 1, "pageSize": 2, "total": 3}
    assert [f["id"] for f in page1["data"]["workFlows"]] == [third, second]
    page2 = await ok(await client.get(FLOWS, params={"page": 2, "pageSize": 2}), paged=True)
    assert [f["id"] for f in page2["data"]["workFlows"]] == [first]
    assert page2["data"]["nextCursor"] is None
    cursor = page1["data"]["nextCursor"]
    assert isinstance(cursor, str)
    assert await ids(pageSize=2, cursor=cursor) == [first]
    assert await ids(page=3, pageSize=2) == []

    created = when(flows[1]["createTime"])
    assert set(await ids(createdFrom=created.isoformat())) == {second, third}
    assert await ids(createdTo=created.isoformat()) == [first]


async def test_stop_lets_the_running_node_finish_and_start_resumes(service: Service) -> None:
    client = service.client
    flow_id = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)

    answer = await client.post(FLOWS + "stop", json={"workFlowId": flow_id, "reason": "upgrade"})
    assert await ok(answer) == {}
    assert await status_of(client, flow_id) == "Stopped"
    stopped = [e for e in await events(client, flow_id) if e["type"] == "FlowStopped"]
    assert [e["data"]["reason"] for e in stopped] == ["upgrade"]
    assert stopped[0]["metadata"]["reason"] == "upgrade"

    service.gate.opened.set()

    async def hold_finished() -> bool:
        nodes = (await detail(client, flow_id))["nodes"]
        return any(n["name"] == "hold" and n["status"] == "Finished" for n in nodes)

    await wait_for(hold_finished)
    found = await detail(client, flow_id)
    assert found["info"]["status"] == "Stopped"
    assert [n["name"] for n in found["nodes"]] == ["prepare", "hold"]  # finish did not start

    # A second stop changes nothing.
    before = await events(client, flow_id)
    assert await ok(await client.post(FLOWS + "stop", json={"workFlowId": flow_id})) == {}
    assert await events(client, flow_id) == before

    assert await ok(await client.post(FLOWS + "start", json={"workFlowId": flow_id})) == {}
    done = await wait_status(client, flow_id, {"Finished"})
    assert [n["name"] for n in done["nodes"]] == ["prepare", "hold", "finish"]
    assert "FlowResumed" in await types(client, flow_id)


async def test_cancel_interrupts_the_running_node(service: Service) -> None:
    client = service.client
    flow_id = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)

    answer = await client.post(FLOWS + "cancel", json={"workFlowId": flow_id, "reason": "no"})
    info = (await ok(answer))["info"]
    assert info["id"] == flow_id
    assert info["status"] in {"Canceling", "Canceled"}

    done = await wait_status(client, flow_id, {"Canceled"})
    assert [(n["name"], n["status"]) for n in done["nodes"]] == [
        ("prepare", "Finished"),
        ("hold", "Canceled"),
    ]
    history = await events(client, flow_id)
    assert history[-1]["type"] == "FlowCanceled"
    assert history[-1]["data"]["node_id"] == f"{flow_id}.2"
    assert history[-1]["data"]["reason"] == "no"
    assert not service.gate.opened.is_set()  # the executor was interrupted, not let through


async def test_cancel_of_a_flow_that_runs_nothing_is_immediate(client: Client) -> None:
    flow_id = await create(client, start=False)
    answer = await client.post(FLOWS + "cancel", json={"workFlowId": flow_id})
    assert (await ok(answer))["info"]["status"] == "Canceled"
    assert await types(client, flow_id) == ["FlowCreated", "CancelRequested", "FlowCanceled"]
    # Canceling again changes nothing either way: the flow has ended.
    assert await status_of(client, flow_id) == "Canceled"


async def test_context_sets_one_key_that_the_flow_then_sees(client: Client) -> None:
    flow_id = await create(client, "fussy", start=False)
    answer = await client.post(
        FLOWS + "context", json={"workFlowId": flow_id, "key": "ok", "value": {"why": [True]}}
    )
    info = (await ok(answer))["info"]
    assert (info["id"], info["status"]) == (flow_id, "Initializing")
    history = await events(client, flow_id)
    assert history[-1]["type"] == "ContextSet"
    assert history[-1]["data"]["changes"] == {"ok": {"why": [True]}}
    state = await ok(await client.get(f"{FLOWS}{flow_id}/state"))
    assert state["context"]["ok"] == {"why": [True]}

    # A null value is a value too.
    await ok(await client.post(FLOWS + "context", json={"workFlowId": flow_id, "key": "x"}))
    state = await ok(await client.get(f"{FLOWS}{flow_id}/state"))
    assert "x" in state["context"]
    assert state["context"]["x"] is None

    await ok(await client.post(FLOWS + "start", json={"workFlowId": flow_id}))
    done = await wait_status(client, flow_id, {"Finished"})
    # Results are the seed's: a line per record, "Completed." when the executor records none.
    assert [(n["name"], n["result"]) for n in done["nodes"]] == [
        ("check", "ok\n"),
        ("done", "Completed.\n"),
    ]


async def test_retry_of_a_failed_flow_runs_the_failed_node_again(client: Client) -> None:
    flow_id = await create(client, "fussy")
    failed = await wait_status(client, flow_id, {"Error"})
    assert failed["info"]["errorCode"] == 7001
    assert failed["info"]["errorMessage"] == "ok is not set"
    assert [(n["name"], n["status"], n["errorCode"]) for n in failed["nodes"]] == [
        ("check", "Error", 7001)
    ]

    answer = await client.post(
        FLOWS + "retry", json={"workFlowId": flow_id, "context": {"ok": True}, "reason": "fixed"}
    )
    assert (await ok(answer))["info"]["id"] == flow_id
    done = await wait_status(client, flow_id, {"Finished"})
    assert [(n["name"], n["status"], n["attempt"]) for n in done["nodes"]] == [
        ("check", "Error", 1),
        ("check", "Finished", 2),
        ("done", "Finished", 1),
    ]
    assert (done["info"]["errorCode"], done["info"]["errorMessage"]) == (None, None)
    history = await events(client, flow_id)
    retried = [e for e in history if e["type"] == "FlowRetried"]
    assert [e["data"]["from_key"] for e in retried] == ["start"]
    assert retried[0]["metadata"]["reason"] == "fixed"


async def test_retry_of_a_flow_stopped_on_a_failed_node(client: Client) -> None:
    flow_id = await create(client, "pausing")
    stopped = await wait_status(client, flow_id, {"Stopped"})
    assert [(n["name"], n["status"]) for n in stopped["nodes"]] == [("check", "Error")]
    await ok(await client.post(FLOWS + "retry", json={"workFlowId": flow_id, "context": {"ok": 1}}))
    await wait_status(client, flow_id, {"Finished"})


async def test_detail_lists_the_seeds_nodes_and_state_lists_every_execution(
    client: Client,
) -> None:
    """docs/api.md: detail ends at the failure that ended the path (the seed's truncation);
    the fail handler's run is in /state."""
    body = {
        "name": "handled",
        "nodes": {
            "start": {"name": "work", "executor": {"type": "fail", "code": 7009}, "fail": "h"},
            "h": {"name": "handler", "executor": {"type": "noop"}},
        },
    }
    await ok(await client.post("/api/v1/workflow-definitions", json=body))
    flow_id = await create(client, "handled")
    failed = await wait_status(client, flow_id, {"Error"})
    assert [(n["name"], n["status"]) for n in failed["nodes"]] == [("work", "Error")]
    state = await ok(await client.get(f"{FLOWS}{flow_id}/state"))
    assert [(n["name"], n["status"]) for n in state["nodes"]] == [
        ("work", "Error"),
        ("handler", "Finished"),
    ]


async def test_the_collection_answers_without_its_trailing_slash(client: Client) -> None:
    body = {"flowName": "backup", "bizId": "no-slash", "bizType": "t", "start": False}
    created = await ok(await post(client, FLOWS.rstrip("/"), body))
    listed = await ok(await client.get(FLOWS.rstrip("/"), params={"bizId": "no-slash"}), paged=True)
    assert [f["id"] for f in listed["data"]["workFlows"]] == [created["workFlowId"]]
