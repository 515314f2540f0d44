"""The task API (docs/workers.md): a node with a queue is run by whoever polls for it, and
only then; its token is good for one answer of one lease; a lapsed lease goes to another
worker as an interrupted run; bad, forged and foreign tokens change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import Service
from tests.api.helpers import (
    DEFINITIONS,
    Client,
    create,
    detail,
    events,
    ok,
    post,
    refused,
    status_of,
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
    client: Client, worker: str = "w1", wait: float = 5, headers: Any = None, **more: Any
) -> list[dict[str, Any]]:
    body = {"queue": "remote", "workerId": worker, "waitSeconds": wait, **more}
    data = await ok(await post(client, POLL, body, headers))
    tasks: list[dict[str, Any]] = data["tasks"]
    return tasks


async def complete(client: Client, token: str, headers: Any = None, **body: Any) -> Any:
    return await post(client, COMPLETE, {"taskToken": token, "status": "success", **body}, headers)


async def test_a_queued_node_finishes_when_and_only_when_a_worker_completes_it(
    service: Service,
) -> None:
    client = service.client
    await register(client, remote_spec())
    flow_id = await create(client, "remote-render", context={"frame": 7})
    await asyncio.sleep(0.5)  # the reactor has had every chance to run it: it must not
    assert await status_of(client, flow_id) == "Processing"
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
