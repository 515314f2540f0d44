"""The task API (docs/workers.md): a node with a queue is run by whoever polls for it, and
only then; its token is good for one answer of one lease; a lapsed lease goes to another
worker as an interrupted run; bad, forged and foreign tokens change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests import readme
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import (
    DEFINITIONS,
    A,
    B,
    Client,
    create,
    detail,
    events,
    ok,
    post,
    refused,
    status_of,
    wait_for,
    wait_status,
)

POLL = "/api/v1/tasks/poll"
HEARTBEAT = "/api/v1/tasks/heartbeat"
COMPLETE = "/api/v1/tasks/complete"
QUEUES = "/api/v1/tasks/queues"


def remote_spec(name: str = "remote-render", **middle: Any) -> dict[str, Any]:
    """prepare -> render (offered on the queue "remote") -> finish; a failed render goes to
    cleanup."""
    return {
        "name": name,
        "nodes": {
            "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "render"},
            "render": {"name": "render", "queue": "remote", "success": "finish",
                       "fail": "cleanup", **middle},
            "finish": {"name": "finish", "executor": {"type": "noop"}},
            "cleanup": {"name": "cleanup", "executor": {"type": "noop"}},
        },
    }  # fmt: skip


async def register(client: Client, spec: dict[str, Any], headers: Any = None) -> None:
    await ok(await post(client, DEFINITIONS, spec, headers))


async def poll(
    client: Client,
    worker: str = "w1",
    wait: float = 5,
    headers: Any = None,
    queue: str = "remote",
    **more: Any,
) -> list[dict[str, Any]]:
    body = {"queue": queue, "workerId": worker, "waitSeconds": wait, **more}
    data = await ok(await post(client, POLL, body, headers))
    tasks: list[dict[str, Any]] = data["tasks"]
    return tasks


async def offered(client: Client, flow_id: str, headers: Any = None) -> dict[str, Any]:
    """The flow's task once its running node is offered on a queue."""

    async def is_offered() -> bool:
        return "task" in await detail(client, flow_id, headers)

    await wait_for(is_offered)
    task: dict[str, Any] = (await detail(client, flow_id, headers))["task"]
    return task


async def complete(client: Client, token: str, headers: Any = None, **body: Any) -> Any:
    return await post(client, COMPLETE, {"taskToken": token, "status": "success", **body}, headers)


async def test_a_queued_node_finishes_when_and_only_when_a_worker_completes_it(
    service: Service,
) -> None:
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render", context={"frame": 7})
    offer = await offered(client, flow_id)
    await asyncio.sleep(0.5)  # the reactor has had every chance to run it: it must not
    assert await status_of(client, flow_id) == "Processing"
    assert offer["workerId"] is None
    found = await detail(client, flow_id)
    assert [n["name"] for n in found["nodes"]] == ["prepare", "render"]
    assert found["task"]["queue"] == "remote"
    assert found["task"]["workerId"] is None

    [task] = await poll(client)
    assert task["workFlowId"] == flow_id
    assert task["nodeName"] == "render"
    assert task["attempt"] == 1
    assert task["context"]["frame"] == 7
    assert task["leaseSeconds"] > 0
    held = (await detail(client, flow_id))["task"]
    assert held["workerId"] == "w1"
    assert held["claimedAt"] is not None
    assert await status_of(client, flow_id) == "Processing"

    answer = await ok(await complete(client, task["taskToken"], result="rendered",
                                     context={"frames": [7]}))  # fmt: skip
    assert answer["workFlowId"] == flow_id
    done = await wait_status(client, flow_id, {"Finished"})
    assert [n["name"] for n in done["nodes"]] == ["prepare", "render", "finish"]
    assert done["nodes"][1]["result"] == "rendered"
    assert "task" not in done or done["task"] is None

    # The same token again: refused, nothing changes.
    before = await events(client, flow_id)
    await refused(await complete(client, task["taskToken"]), 409, 40138)
    beat = await ok(await post(client, HEARTBEAT, {"taskToken": task["taskToken"]}))
    assert beat == {"wanted": False, "status": "Finished"}
    assert await events(client, flow_id) == before
    who = next(e for e in before if e["data"].get("node_id") == task["nodeId"]
               and e["type"] == "NodeSucceeded")  # fmt: skip
    assert "worker:w1" in who["metadata"]["actor"]


async def test_a_worker_that_stops_heartbeating_loses_the_task_to_another(
    service: Service,
) -> None:
    """The fixture's lease is 2 s: the first worker's lease lapses, a reactor records the lost
    worker (40110) and offers the node again as attempt 2; the first worker's token is dead."""
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render")
    [first] = await poll(client, "w1")
    await asyncio.sleep(first["leaseSeconds"] + 0.5)
    [second] = await poll(client, "w2", wait=10)
    assert second["workFlowId"] == flow_id
    assert second["attempt"] == 2
    assert second["nodeId"] != first["nodeId"]
    await refused(await complete(client, first["taskToken"]), 409, 40138)
    beat = await ok(await post(client, HEARTBEAT, {"taskToken": first["taskToken"]}))
    assert beat["wanted"] is False
    await ok(await complete(client, second["taskToken"]))
    done = await wait_status(client, flow_id, {"Finished"})
    interrupted = [n for n in done["nodes"] if n["name"] == "render"]
    assert [n["status"] for n in interrupted] == ["Error", "Finished"]
    lost = [e for e in await events(client, flow_id) if e["type"] == "NodeFailed"]
    assert lost[0]["data"]["error_code"] == 40110


async def test_heartbeats_keep_the_lease_and_say_when_the_flow_stops_wanting_it(
    service: Service,
) -> None:
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render")
    [task] = await poll(client)
    for _ in range(4):  # twice the lease, kept by beats
        beat = await ok(await post(client, HEARTBEAT, {"taskToken": task["taskToken"],
                                                       "details": {"done": 0.5}}))  # fmt: skip
        assert beat == {"wanted": True, "status": "Processing"}
        await asyncio.sleep(task["leaseSeconds"] / 2)
    assert (await detail(client, flow_id))["task"]["details"] == {"done": 0.5}
    assert await poll(client, "w2", wait=0) == []  # still held by w1
    await ok(await post(client, "/api/v1/workflow/stop", {"workFlowId": flow_id}))
    beat = await ok(await post(client, HEARTBEAT, {"taskToken": task["taskToken"]}))
    assert beat == {"wanted": False, "status": "Stopped"}
    # A stopped flow's node may still finish (stop = pause): the answer is recorded, and no
    # next node starts until the flow is started again.
    await ok(await complete(client, task["taskToken"], result="done anyway"))
    stopped = await detail(client, flow_id)
    assert stopped["info"]["status"] == "Stopped"
    assert [n["name"] for n in stopped["nodes"]] == ["prepare", "render"]
    await ok(await post(client, "/api/v1/workflow/start", {"workFlowId": flow_id}))
    await wait_status(client, flow_id, {"Finished"})


async def test_a_cancel_takes_the_task_back_at_once(service: Service) -> None:
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render")
    [task] = await poll(client)
    await ok(await post(client, "/api/v1/workflow/cancel", {"workFlowId": flow_id}))
    await wait_status(client, flow_id, {"Canceled"}, within=task["leaseSeconds"] - 0.5)
    beat = await ok(await post(client, HEARTBEAT, {"taskToken": task["taskToken"]}))
    assert beat == {"wanted": False, "status": "Canceled"}
    await refused(await complete(client, task["taskToken"]), 409, 40138)


async def test_a_stopped_flow_offers_nothing_until_it_is_started(service: Service) -> None:
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render")
    await offered(client, flow_id)
    await ok(await post(client, "/api/v1/workflow/stop", {"workFlowId": flow_id}))
    assert await poll(client, wait=0.3) == []
    await ok(await post(client, "/api/v1/workflow/start", {"workFlowId": flow_id}))
    [task] = await poll(client)
    assert task["workFlowId"] == flow_id
    assert task["attempt"] == 1


async def test_a_failure_takes_the_retry_policy_then_the_fail_transition(
    service: Service,
) -> None:
    client = service.client
    spec = remote_spec("remote-retry", retry={"maxAttempts": 2, "initialInterval": 0.1})
    await register(client, spec)
    flow_id = await create(client, "remote-retry")
    [first] = await poll(client)
    await ok(await complete(client, first["taskToken"], status="fail", message="no gpu",
                            code=7001))  # fmt: skip
    [second] = await poll(client)
    assert second["attempt"] == 2
    await ok(await complete(client, second["taskToken"], status="fail", message="still none"))
    await wait_status(client, flow_id, {"Error"})
    history = await events(client, flow_id)
    started = [e["data"]["name"] for e in history if e["type"] == "NodeStarted"]
    assert started == ["prepare", "render", "render", "cleanup"]
    failed = [e for e in history if e["type"] == "NodeFailed"]
    assert [e["data"]["error_code"] for e in failed] == [7001, 40109]
    assert failed[1]["data"]["error_message"] == "still none"


async def test_a_polling_node_runs_and_polls_as_tasks(service: Service) -> None:
    client = service.client
    spec = remote_spec("remote-poll", kind="polling", pollInterval=0.2, pollDeadline=60)
    await register(client, spec)
    flow_id = await create(client, "remote-poll")
    [run] = await poll(client)
    assert run["operationId"] is None
    # A run task of a polling node ends with its operation, not with success.
    await ok(await complete(client, run["taskToken"], status="running", operationId="op-1"))
    [first] = await poll(client)
    assert first["operationId"] == "op-1"
    assert first["nodeId"] == run["nodeId"]
    await ok(await complete(client, first["taskToken"], status="running"))
    await refused(await complete(client, first["taskToken"], status="running"), 409, 40138)
    [second] = await poll(client)
    assert second["operationId"] == "op-1"
    await ok(await complete(client, second["taskToken"], result="operation done"))
    done = await wait_status(client, flow_id, {"Finished"})
    assert done["nodes"][1]["result"] == "operation done"


async def test_a_sync_task_cannot_answer_running(service: Service) -> None:
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render")
    [task] = await poll(client)
    before = await events(client, flow_id)
    await refused(await complete(client, task["taskToken"], status="running",
                                 operationId="x"), 400, 40115)  # fmt: skip
    assert await events(client, flow_id) == before
    await ok(await complete(client, task["taskToken"]))


async def test_forged_foreign_and_malformed_tokens_change_nothing(
    make_service: MakeService,
) -> None:
    service = await make_service(tokens=TOKENS)
    client = service.client
    await register(client, remote_spec(), A)
    flow_id = await create(client, "remote-render", headers=A)
    # Tenant B polls the same queue name: it is B's queue, empty.
    assert await poll(client, "b1", wait=0.2, headers=B) == []
    [task] = await poll(client, "a1", headers=A)
    token = task["taskToken"]
    before = await events(client, flow_id, A)
    await refused(await complete(client, token, headers=B), 404, 40137)
    await refused(await post(client, HEARTBEAT, {"taskToken": token}, B), 404, 40137)
    prefix, payload, mac = token.split(".")
    forged = [
        f"{prefix}.{payload}.{mac[:-2]}AA",  # another signature
        f"{prefix}.{payload[:-2]}.{mac}",  # another claim or node
        "flt1.bm9wZQ.AAAA",
        "not-a-token",
        "flt1." + "A" * 1000 + ".x",
    ]
    for bad in forged:
        await refused(await complete(client, bad, headers=A), 404, 40137)
    for body in (
        {"taskToken": token, "status": "success", "result": "a\x00b"},
        {"taskToken": token, "status": "done"},
        {"taskToken": token, "status": "success", "extra": 1},
        {"taskToken": token, "status": "success", "operationId": "x"},
        {"taskToken": "", "status": "success"},
    ):
        await refused(await post(client, COMPLETE, body, A), 400, 40115)
    for body in (
        {"queue": "bad queue", "workerId": "a1"},
        {"queue": "remote", "workerId": "a1", "max": 0},
        {"queue": "remote", "workerId": "a1", "max": 101},
        {"queue": "remote", "workerId": "a1", "waitSeconds": 31},
        {"queue": "remote", "workerId": "a\x001"},
        {"queue": "remote"},
    ):
        await refused(await post(client, POLL, body, A), 400, 40115)
    surrogate = b'{"taskToken": "%s", "status": "success", "context": {"k": "\\ud800"}}'
    response = await client.post(COMPLETE, data=surrogate % token.encode(),
                                 headers={**A, "Content-Type": "application/json"})  # fmt: skip
    await refused(response, 400, 40115)
    big = {"taskToken": token, "details": {"x": "y" * 70_000}}
    await refused(await post(client, HEARTBEAT, big, A), 400, 40115)
    assert await events(client, flow_id, A) == before
    await refused(await post(client, POLL, {"queue": "remote", "workerId": "x"}), 401, 40118)
    await ok(await complete(client, token, headers=A))
    await wait_status(client, flow_id, {"Finished"}, headers=A)
    queues = await ok(await client.get(QUEUES, headers=B))
    assert [q["queue"] for q in queues["queues"]] == ["remote"]
    assert queues["queues"][0]["workers"] == ["b1"]


async def test_a_poll_sent_again_with_its_key_answers_the_same_tasks(service: Service) -> None:
    client = service.client
    await register(client, remote_spec())
    flows = {await create(client, "remote-render", biz_id=f"b{i}") for i in range(3)}
    for flow_id in flows:
        await offered(client, flow_id)
    key = {"Idempotency-Key": "poll-1"}
    first = await poll(client, max=2, headers=key)
    again = await poll(client, max=2, headers=key)
    assert len(first) == 2
    assert [t["taskToken"] for t in again] == [t["taskToken"] for t in first]
    rest = await poll(client, max=2)
    assert len(rest) == 1
    assert {t["workFlowId"] for t in first + rest} == flows


async def test_a_waiting_poll_answers_as_soon_as_a_task_is_offered(service: Service) -> None:
    client = service.client
    await register(client, remote_spec())
    loop = asyncio.get_running_loop()
    waiting = asyncio.create_task(poll(client, wait=10))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    flow_id = await create(client, "remote-render")
    created = loop.time()
    [task] = await asyncio.wait_for(waiting, 5)
    assert task["workFlowId"] == flow_id
    # Not a timing assertion on speed (benchmarks measure that): only that it did not wait
    # for the poll's whole wait.
    assert loop.time() - created < 5
    queues = await ok(await client.get(QUEUES))
    assert queues["queues"][0]["held"] == 1
    assert queues["queues"][0]["workers"] == ["w1"]


async def test_metrics_count_each_queue_s_tasks_and_workers(service: Service) -> None:
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render")
    await offered(client, flow_id)
    await create(client, "remote-render", biz_id="b2")
    [task] = await poll(client, "w9")
    await wait_for(lambda: _offered_count(client, 1))
    text = await (await client.get("/metrics")).text()
    assert 'flowlog_task_queue_tasks{queue="remote",state="held"} 1.0' in text
    assert 'flowlog_task_queue_workers{queue="remote"} 1.0' in text
    await ok(await complete(client, task["taskToken"]))


async def _offered_count(client: Client, count: int) -> bool:
    queues = (await ok(await client.get(QUEUES)))["queues"]
    return bool(queues) and queues[0]["depth"] == count


async def test_the_readme_queue_node_runs_through_a_worker(service: Service) -> None:
    client = service.client
    node = orjson.loads("{" + readme.block("queue-node") + "}")
    spec = remote_spec("readme-queue")
    spec["nodes"].update(node)
    spec["nodes"]["start"]["success"] = "render"
    await register(client, spec)
    flow_id = await create(client, "readme-queue")
    [task] = await poll(client, queue="gpu")
    assert task["nodeName"] == "render"
    await ok(await complete(client, task["taskToken"]))
    await wait_status(client, flow_id, {"Finished"})


async def test_a_flow_whose_first_node_is_on_a_queue_is_offered_by_its_create(
    service: Service,
) -> None:
    client = service.client
    spec = remote_spec("remote-first")
    spec["nodes"]["start"] = {"name": "render", "queue": "remote", "success": "finish",
                              "fail": "cleanup"}  # fmt: skip
    del spec["nodes"]["render"]
    await register(client, spec)
    flow_id = await create(client, "remote-first")
    history = await events(client, flow_id)
    # One append, by the creating request: no reactor's step between the create and the offer.
    assert [e["type"] for e in history] == ["FlowCreated", "FlowStarted", "NodeStarted"]
    assert {e["actor"] for e in history} == {history[0]["actor"]}
    assert len({e["time"] for e in history}) == 1
    [task] = await poll(client, wait=0)
    assert task["workFlowId"] == flow_id
    await ok(await complete(client, task["taskToken"]))
    await wait_status(client, flow_id, {"Finished"})
    # A flow whose first node a reactor runs is started by a reactor, as before.
    await register(client, remote_spec())
    local = await create(client, "remote-render")
    await offered(client, local)
    first = next(e for e in await events(client, local) if e["type"] == "NodeStarted")
    assert first["actor"].startswith("reactor:")
