"""Flow control over REST: a definition's concurrency per key value, a node's, a node's rate
limit; flows over a limit wait in creation order and say so (``waitingFor``), and move on
when a slot is given back. Nodes on a task queue make the tests' flows run exactly as long as
the test wants."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from tests.api.conftest import Service
from tests.api.helpers import (
    Client,
    create,
    detail,
    events,
    ok,
    post,
    refused,
    wait_for,
    wait_status,
)
from tests.tasks.test_task_api import COMPLETE, offered, poll, register


def held_spec(name: str, **limits: Any) -> dict[str, Any]:
    """prepare -> work (a task on queue "remote") -> finish, with the limits given."""
    work = {"name": "work", "queue": "remote", "success": "finish", **limits.pop("work", {})}
    return {
        "name": name,
        **limits,
        "nodes": {
            "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "work"},
            "work": work,
            "finish": {"name": "finish", "executor": {"type": "noop"}},
        },
    }


async def waiting_for(client: Client, flow_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await detail(client, flow_id)).get("waitingFor") or []
    return found


async def waits(client: Client, flow_id: str, ahead: int) -> dict[str, Any]:
    async def says_so() -> bool:
        found = await waiting_for(client, flow_id)
        return bool(found) and found[0]["ahead"] == ahead

    await wait_for(says_so)
    return (await waiting_for(client, flow_id))[0]


class Held:
    """Tasks the test polled, by flow: a poll leases every task offered, and the test
    completes each when it chooses."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}

    async def finish(self, flow_id: str) -> None:
        await offered(self.client, flow_id)
        if flow_id not in self.tokens:
            for task in await poll(self.client, max=100):
                self.tokens[task["workFlowId"]] = task["taskToken"]
        body = {"taskToken": self.tokens.pop(flow_id), "status": "success"}
        await ok(await post(self.client, COMPLETE, body))
        await wait_status(self.client, flow_id, {"Finished"})


async def test_flows_over_a_definition_s_limit_wait_in_creation_order(service: Service) -> None:
    client = service.client
    held = Held(client)
    limit = {"key": "context.clusterId", "limit": 1}
    await register(client, held_spec("one-per-cluster", concurrency=limit))
    # The holder first (flows that ask at the same instant are served in the order they ask).
    first = await create(client, "one-per-cluster", biz_id="b0", context={"clusterId": "c-1"})
    await offered(client, first)
    second, third = [
        await create(client, "one-per-cluster", biz_id=f"b{n}", context={"clusterId": "c-1"})
        for n in (1, 2)
    ]
    other = await create(client, "one-per-cluster", biz_id="b9", context={"clusterId": "c-2"})
    await offered(client, other)  # another cluster: its own limit
    said = await waits(client, second, ahead=0)
    assert said["limit"] == "concurrency"
    assert said["of"] == "flow"
    assert said["key"] == "context.clusterId"
    assert said["value"] == "c-1"
    assert said["running"] == 1
    assert said["reason"] == "concurrency context.clusterId=c-1, 0 ahead"
    assert (await waits(client, third, ahead=1))["reason"].endswith("1 ahead")
    # Nothing of the waiting flows ran: they wait before their first node.
    assert [e["type"] for e in await events(client, second)] == ["FlowCreated", "FlowStarted"]

    await held.finish(first)
    await offered(client, second)  # woken when the first gave its slot back
    assert await waiting_for(client, second) == []
    await waits(client, third, ahead=0)
    await held.finish(second)
    await held.finish(third)
    await held.finish(other)
    slots = await service.engine.pool.fetchval("SELECT count(*) FROM flow_slots")
    assert slots == 0


async def test_a_canceled_holder_gives_its_slot_back_and_a_stopped_waiter_leaves_the_line(
    service: Service,
) -> None:
    client = service.client
    held = Held(client)
    await register(client, held_spec("one-at-a-time", concurrency={"key": "bizId", "limit": 1}))
    holder = await create(client, "one-at-a-time", biz_id="same")
    await offered(client, holder)
    stopped, next_one = [await create(client, "one-at-a-time", biz_id="same") for _ in range(2)]
    await waits(client, stopped, ahead=0)
    await waits(client, next_one, ahead=1)
    await ok(await post(client, "/api/v1/workflow/stop", {"workFlowId": stopped}))
    await waits(client, next_one, ahead=0)
    await ok(await post(client, "/api/v1/workflow/cancel", {"workFlowId": holder}))
    await wait_status(client, holder, {"Canceled"})
    await offered(client, next_one)
    # Started again, the stopped flow queues in its creation order: before next_one, which
    # holds the slot now; it is first in line.
    await ok(await post(client, "/api/v1/workflow/start", {"workFlowId": stopped}))
    await waits(client, stopped, ahead=0)
    await held.finish(next_one)
    await held.finish(stopped)


async def test_a_node_s_concurrency_limits_its_runs_not_the_flows(service: Service) -> None:
    client = service.client
    held = Held(client)
    spec = held_spec("node-limited", work={"concurrency": {"key": "tenant", "limit": 2}})
    await register(client, spec)
    flows = [await create(client, "node-limited", biz_id=f"b{n}") for n in range(3)]
    # Whichever two reach the node first run it (their first nodes race); the third waits.
    roles: dict[str, list[str]] = {}

    async def settled() -> bool:
        roles.clear()
        for flow_id in flows:
            found = await detail(client, flow_id)
            side = "runs" if "task" in found else "waits" if found.get("waitingFor") else "?"
            roles.setdefault(side, []).append(flow_id)
        return len(roles.get("runs", [])) == 2 and len(roles.get("waits", [])) == 1

    await wait_for(settled)
    [waiter] = roles["waits"]
    said = (await waiting_for(client, waiter))[0]
    assert said["of"] == "node work"
    assert said["running"] == 2
    assert said["ahead"] == 0
    # It ran its first node: the limit is the node's.
    started = [e["data"]["name"] for e in await events(client, waiter)
               if e["type"] == "NodeStarted"]  # fmt: skip
    assert started == ["prepare"]
    first, second = roles["runs"]
    await held.finish(first)
    await offered(client, waiter)
    await held.finish(second)
    await held.finish(waiter)


async def test_a_rate_limit_spaces_a_node_s_starts(service: Service) -> None:
    client = service.client
    spec = held_spec("rated", work={"queue": None, "executor": {"type": "noop"},
                                    "rateLimit": {"key": "tenant", "limit": 4,
                                                  "periodSeconds": 1}})  # fmt: skip
    spec["nodes"]["work"].pop("queue")
    await register(client, spec)
    flows = [await create(client, "rated", biz_id=f"b{n}") for n in range(5)]
    for flow_id in flows:
        await wait_status(client, flow_id, {"Finished"}, within=20)
    starts = []
    for flow_id in flows:
        for event in await events(client, flow_id):
            if event["type"] == "NodeStarted" and event["data"]["name"] == "work":
                starts.append(datetime.fromisoformat(event["time"]))
    starts.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    # Four starts a second, evenly: a quarter of a second apart as the limit reserves them.
    # What is read here is when each start's append was recorded, a little after its
    # reservation and by a delay that varies with the machine's load: each gap is held to
    # half the spacing, and the five starts together to four spacings, less 0.1 s.
    assert all(gap >= 0.125 for gap in gaps), gaps
    assert sum(gaps) >= 0.9, gaps


async def test_bad_limits_are_refused_and_register_nothing(service: Service) -> None:
    client = service.client
    for limits in (
        {"concurrency": {"key": "clusterId", "limit": 1}},
        {"concurrency": {"key": "context.x", "limit": 0}},
        {"concurrency": {"key": "bizId", "limit": True}},
        {"work": {"rateLimit": {"key": "tenant", "limit": 1, "periodSeconds": 0}}},
        {"work": {"concurrency": {"key": "context.\u0000", "limit": 1}}},
    ):
        response = await post(client, "/api/v1/workflow-definitions", held_spec("bad", **limits))
        await refused(response, 400, 40115)
    await refused(await client.get("/api/v1/workflow-definitions/bad"), 404, 40104)


async def test_urgent_flows_are_claimed_and_polled_first(service: Service) -> None:
    client = service.client
    spec = held_spec("urgent")
    spec["nodes"]["start"] = {"name": "work", "queue": "remote", "success": ""}
    del spec["nodes"]["work"], spec["nodes"]["finish"]
    await register(client, spec)
    flows = {}
    for priority in (0, 5, 9, 0):
        response = await post(client, "/api/v1/workflow/", {
            "flowName": "urgent", "bizId": f"p{priority}", "bizType": "t", "start": True,
            "priority": priority})  # fmt: skip
        flows[(await ok(response))["workFlowId"]] = priority
    for flow_id in flows:
        await offered(client, flow_id)
    tasks = await poll(client, max=4)
    assert [t["priority"] for t in tasks] == [9, 5, 0, 0]
    for bad in (10, -1, True, "9"):
        body = {"flowName": "urgent", "bizId": "x", "bizType": "t", "priority": bad}
        await refused(await post(client, "/api/v1/workflow/", body), 400, 40115)
