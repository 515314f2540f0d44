"""Map, parallel and subflow nodes over REST: the issue's fleet backup in JSON, the children
in the list and the detail, and what another tenant can (not) do with them."""

from __future__ import annotations

from typing import Any

import pytest

from flowlog.workflow.errors import Code
from flowlog.workflow.fanout import MAX_DEPTH
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import (
    DEFINITIONS,
    FLOWS,
    NO_FLOW,
    A,
    B,
    create,
    detail,
    ok,
    post,
    refused,
    total,
    wait_status,
)

ENDED = ("Finished", "Error", "Canceled")
NOOP = {"type": "noop"}
BACKUP = {"name": "cluster-backup", "nodes": {"start": {"name": "backUp", "executor": NOOP}}}
FLEET = {
    "name": "backup-fleet",
    "nodes": {
        "start": {"name": "listClusters", "executor": {"type": "noop"}, "success": "each"},
        "each": {"name": "backupEach", "kind": "map", "items": "clusters",
                 "itemKey": "clusterId", "flow": "cluster-backup", "maxConcurrency": 5,
                 "toleratedFailures": 0, "resultsKey": "backups", "success": "checks"},
        "checks": {"name": "verifyAndReport", "kind": "parallel",
                   "branches": {"verify": "verify1", "report": "report1"}, "join": "all",
                   "success": "done"},
        "verify1": {"name": "verify", "executor": {"type": "noop"}, "success": ""},
        "report1": {"name": "report", "executor": {"type": "noop"}, "success": ""},
        "done": {"name": "done", "executor": {"type": "noop"}},
    },
}  # fmt: skip
CLUSTERS = ["c-1", "c-2", "c-3"]


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def fleet(service: Service, headers: Any) -> str:
    for spec in (BACKUP, FLEET):
        await ok(await post(service.client, DEFINITIONS, spec, headers))
    return await create(service.client, "backup-fleet", context={"clusters": CLUSTERS},
                        biz_id="tenant-fleet", headers=headers)  # fmt: skip


async def test_the_fleet_backup_in_json_runs_to_finished_with_a_backup_per_cluster(
    guarded: Service,
) -> None:
    client = guarded.client
    flow_id = await fleet(guarded, A)
    found = await wait_status(client, flow_id, ENDED, headers=A, within=30)
    assert found["info"]["status"] == "Finished", found
    state = await guarded.engine.service.get(flow_id)
    assert [b["clusterId"] for b in state.context["backups"]] == CLUSTERS
    assert "parentFlowId" not in found["info"]  # a parent is not a child

    groups = {g["kind"]: g for g in found["children"]}
    assert set(groups) == {"map", "parallel"}
    counts = ("total", "notStarted", "running", "finished", "failed", "canceled")
    assert [groups["map"][k] for k in counts] == [3, 0, 0, 3, 0, 0]
    assert groups["map"]["flows"] == []  # a map's children are listed, not inlined
    lanes = groups["parallel"]["flows"]
    assert [(lane["branch"], lane["status"]) for lane in lanes] == [
        ("verify", "Finished"), ("report", "Finished")]  # fmt: skip
    assert [[n["name"] for n in lane["nodes"]] for lane in lanes] == [["verify"], ["report"]]

    body = await ok(await client.get(FLOWS, params={"parentFlowId": flow_id}, headers=A),
                    paged=True)  # fmt: skip
    children = body["data"]["workFlows"]
    assert len(children) == 5
    assert {c["parentFlowId"] for c in children} == {flow_id}
    mapped = sorted((c["childIndex"], c["bizId"]) for c in children if "branch" not in c)
    assert mapped == [(i, f"tenant-fleet/{i}") for i in range(3)]
    one = await detail(client, children[0]["id"], A)
    assert one["info"]["parentFlowId"] == flow_id
    assert "children" not in one


async def test_another_tenant_sees_no_child_and_no_count(guarded: Service) -> None:
    client = guarded.client
    flow_id = await fleet(guarded, A)
    await wait_status(client, flow_id, ENDED, headers=A, within=30)
    assert await total(client, A, parentFlowId=flow_id) == 5
    assert await total(client, B, parentFlowId=flow_id) == 0
    child = (await ok(await client.get(FLOWS, params={"parentFlowId": flow_id}, headers=A),
                      paged=True))["data"]["workFlows"][0]["id"]  # fmt: skip
    await refused(await client.get(FLOWS + child, headers=B), 404, Code.FLOW_NOT_FOUND)
    await refused(await client.get(FLOWS + flow_id, headers=B), 404, Code.FLOW_NOT_FOUND)


async def test_a_map_cannot_run_another_tenants_definition(guarded: Service) -> None:
    client = guarded.client
    secret = {"name": "secret", "nodes": {"start": {"name": "s", "executor": {"type": "noop"}}}}
    await ok(await post(client, DEFINITIONS, secret, B))
    spy = {"name": "spy", "nodes": {"start": {
        "name": "each", "kind": "map", "items": "xs", "flow": "secret"}}}  # fmt: skip
    await ok(await post(client, DEFINITIONS, spy, A))
    flow_id = await create(client, "spy", context={"xs": [1, 2]}, headers=A)
    found = await wait_status(client, flow_id, ENDED, headers=A, within=20)
    assert found["info"]["status"] == "Error"
    assert found["info"]["errorCode"] == Code.CHILDREN_NOT_STARTED
    assert "secret workflow definition does not exist" in found["info"]["errorMessage"]
    assert await total(client, A, parentFlowId=flow_id) == 0
    assert await total(client, B) == 0  # nothing of B's ran


@pytest.mark.parametrize(
    ("node", "says", "code"),
    [
        ({"name": "m", "kind": "map", "items": "xs", "flow": "x", "executor": {"type": "noop"}},
         "runs no executor", Code.INVALID_DEFINITION),
        ({"name": "m", "kind": "map", "flow": "x"}, "items", Code.INVALID_DEFINITION),
        ({"name": "m", "kind": "parallel", "branches": {"a": "nowhere"}}, "does not exist",
         Code.INVALID_DEFINITION),
        ({"name": "m", "kind": "parallel", "branches": {"a": "start"}}, "loop",
         Code.INVALID_DEFINITION),
        ({"name": "m", "kind": "parallel", "branches": {"a": "b"}, "join": {"atLeast": 2}},
         "atLeast", Code.INVALID_DEFINITION),
        ({"name": "m", "kind": "map", "items": "xs", "flow": "x", "toleratedFailures": "150%"},
         "toleratedFailures", Code.BAD_INPUT),
        ({"name": "m", "executor": {"type": "noop"}, "items": "xs"}, "belong on a map",
         Code.INVALID_DEFINITION),
        ({"name": "m"}, "needs an executor", Code.INVALID_DEFINITION),
        ({"name": "m", "kind": "map", "items": "xs", "flow": "x", "maxConcurrency": 0},
         "maxConcurrency", Code.BAD_INPUT),
        ({"name": "m", "kind": "parallel", "branches": {"a\u0000": "b"}}, "NUL",
         Code.BAD_INPUT),
    ],
)  # fmt: skip
async def test_a_definition_with_a_wrong_child_node_is_refused_and_nothing_is_registered(
    service: Service, node: dict[str, Any], says: str, code: Code
) -> None:
    nodes: dict[str, Any] = {"start": node, "b": {"name": "b", "executor": {"type": "noop"}}}
    if node.get("kind") != "parallel":
        nodes.pop("b")
    answer = await post(service.client, DEFINITIONS, {"name": "wrong", "nodes": nodes})
    refusal = await refused(answer, 400, code)
    assert says in refusal["message"], refusal
    await refused(await service.client.get(f"{DEFINITIONS}/wrong"), 404, Code.DEFINE_NOT_FOUND)


async def test_a_list_by_a_parent_that_is_not_a_flow_id_is_bad_input(service: Service) -> None:
    answer = await service.client.get(FLOWS, params={"parentFlowId": "x' OR 1=1"})
    await refused(answer, 400, Code.BAD_INPUT)
    assert await total(service.client, parentFlowId=NO_FLOW) == 0


async def test_a_linear_flow_keeps_the_seeds_shapes(service: Service) -> None:
    flow_id = await create(service.client, "backup")
    found = await wait_status(service.client, flow_id, ENDED)
    assert set(found) == {"info", "nodes", "nodeNames", "waiting"}
    assert not {"parentFlowId", "parentNodeId", "childIndex", "branch"} & set(found["info"])


async def test_a_definition_that_runs_itself_stops_at_the_depth_limit(service: Service) -> None:
    client = service.client
    bomb = {"name": "bomb", "nodes": {"start": {"name": "again", "kind": "subflow",
                                                 "flow": "bomb"}}}  # fmt: skip
    await ok(await post(client, DEFINITIONS, bomb))
    root = await create(client, "bomb")
    found = await wait_status(client, root, ENDED, within=30)
    # The deepest flow could not start its child; each parent's sub-flow failed in turn.
    assert found["info"]["status"] == "Error"
    assert found["info"]["errorCode"] == Code.CHILDREN_FAILED
    assert await total(client) == 1 + MAX_DEPTH
    deepest = await ok(await client.get(FLOWS, params={"pageSize": 1}), paged=True)
    leaf = deepest["data"]["workFlows"][0]
    assert leaf["errorCode"] == Code.CHILDREN_NOT_STARTED
    assert "at most 8 deep" in leaf["errorMessage"]
