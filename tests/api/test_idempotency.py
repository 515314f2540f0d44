"""Idempotency-Key on every POST: the same key and body again answers the first answer and has
no second effect; another body is refused (422); keys are per tenant; the key is written by
the effect's own statement; concurrent requests with one key make one effect."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from flowlog.eventstore import connect
from flowlog.workflow.caller import Caller
from flowlog.workflow.errors import Code
from flowlog.workflow.idempotency import Idempotency, find, fingerprint, sweep
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import (
    DEFINITIONS,
    FLOWS,
    A,
    B,
    Client,
    create,
    detail,
    events,
    ok,
    post,
    refused,
    total,
    types,
    wait_for,
    wait_status,
)
from tests.helpers import kill_the_slow_append, slow_first_append


def keyed(key: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key, **(headers or {})}


CREATE = {"flowName": "backup", "bizId": "idem", "bizType": "t", "start": True}


async def test_a_create_sent_again_answers_the_same_flow_and_creates_nothing(
    client: Client,
) -> None:
    first = await ok(await post(client, FLOWS, CREATE, keyed("create-1")))
    await wait_status(client, first["workFlowId"], {"Finished"})
    again = await ok(await post(client, FLOWS, CREATE, keyed("create-1")))
    assert again == first  # the first answer, not the flow as it is now (Finished)
    assert first["info"]["status"] == "Processing"
    assert await total(client) == 1
    other = await ok(await post(client, FLOWS, CREATE, keyed("create-2")))
    assert other["workFlowId"] != first["workFlowId"]
    assert await total(client) == 2
    created = [e for e in await events(client, first["workFlowId"]) if e["type"] == "FlowCreated"]
    assert created[0]["metadata"]["idempotency_key"] == "create-1"


async def test_the_same_key_with_another_body_is_refused_and_changes_nothing(
    client: Client,
) -> None:
    await ok(await post(client, FLOWS, CREATE, keyed("k")))
    refusal = await refused(
        await post(client, FLOWS, {**CREATE, "bizId": "other"}, keyed("k")),
        422,
        Code.IDEMPOTENCY_REUSED,
    )
    assert "'k'" in refusal["message"]
    assert await total(client) == 1
    flow_id = await create(client, start=False)
    await refused(
        await post(client, FLOWS + "stop", {"workFlowId": flow_id}, keyed("k")),
        422,
        Code.IDEMPOTENCY_REUSED,
    )
    assert await types(client, flow_id) == ["FlowCreated"]


async def test_commands_sent_again_have_one_effect_and_refusals_stay_refusals(
    service: Service,
) -> None:
    client = service.client
    flow_id = await create(client, "gated")
    await asyncio.wait_for(service.gate.entered.wait(), 10)
    stop = {"workFlowId": flow_id, "reason": "window"}
    for _ in range(3):
        assert await ok(await post(client, FLOWS + "stop", stop, keyed("stop-1"))) == {}
    service.gate.opened.set()

    async def node_finished() -> bool:  # stop is a pause: the running node finishes
        return (await detail(client, flow_id))["nodes"][-1]["status"] == "Finished"

    await wait_for(node_finished)
    assert (await types(client, flow_id)).count("FlowStopped") == 1

    cancel = {"workFlowId": flow_id, "reason": "no more"}
    first = await ok(await post(client, FLOWS + "cancel", cancel, keyed("cancel-1")))
    assert first["info"]["status"] == "Canceled"
    assert await ok(await post(client, FLOWS + "cancel", cancel, keyed("cancel-1"))) == first
    assert (await types(client, flow_id)).count("FlowCanceled") == 1

    # A refusal is answered again as it was, even where the request could now succeed.
    other = await create(client, "fussy")
    await wait_status(client, other, {"Error"})
    start = {"workFlowId": other}
    await refused(await post(client, FLOWS + "start", start, keyed("start-1")), 409, 40103)
    await ok(await post(client, FLOWS + "retry", {"workFlowId": other, "context": {"ok": True}}))
    await wait_status(client, other, {"Finished"})
    await refused(await post(client, FLOWS + "start", start, keyed("start-1")), 409, 40103)


async def test_twenty_concurrent_creates_with_one_key_make_one_flow(client: Client) -> None:
    answers = await asyncio.gather(
        *(post(client, FLOWS, CREATE, keyed("burst")) for _ in range(20))
    )
    bodies = [await ok(answer) for answer in answers]
    assert {body["workFlowId"] for body in bodies} == {bodies[0]["workFlowId"]}
    assert all(body == bodies[0] for body in bodies)
    assert await total(client) == 1


async def test_twenty_concurrent_commands_with_one_key_make_one_effect(client: Client) -> None:
    flow_id = await create(client, "fussy")
    await wait_status(client, flow_id, {"Error"})
    body = {"workFlowId": flow_id, "context": {"ok": True}, "reason": "fixed"}
    answers = await asyncio.gather(
        *(post(client, FLOWS + "retry", body, keyed("retry-burst")) for _ in range(20))
    )
    bodies = [await ok(answer) for answer in answers]
    assert all(body == bodies[0] for body in bodies)
    await wait_status(client, flow_id, {"Finished"})
    assert (await types(client, flow_id)).count("FlowRetried") == 1


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def test_keys_belong_to_their_tenant(guarded: Service) -> None:
    client = guarded.client
    mine = await ok(await post(client, FLOWS, CREATE, keyed("shared", A)))
    theirs = await ok(await post(client, FLOWS, {**CREATE, "bizId": "b"}, keyed("shared", B)))
    assert mine["workFlowId"] != theirs["workFlowId"]
    assert await total(client, A) == 1
    assert await total(client, B) == 1


async def test_bulk_and_definitions_take_keys_too(client: Client) -> None:
    flows = [await create(client, "backup", start=False) for _ in range(3)]
    bulk = {"action": "cancel", "workFlowIds": flows, "reason": "cleanup"}
    first = await ok(await post(client, FLOWS + "bulk", bulk, keyed("bulk-1")))
    assert first["succeeded"] == 3
    assert await ok(await post(client, FLOWS + "bulk", bulk, keyed("bulk-1"))) == first
    for flow_id in flows:
        assert (await types(client, flow_id)).count("CancelRequested") == 1
    await refused(
        await post(client, FLOWS + "bulk", {**bulk, "reason": "other"}, keyed("bulk-1")),
        422, Code.IDEMPOTENCY_REUSED,
    )  # fmt: skip

    spec = {"name": "keyed", "nodes": {"start": {"name": "a", "executor": {"type": "noop"}}}}
    registered = await ok(await post(client, DEFINITIONS, spec, keyed("def-1")))
    assert await ok(await post(client, DEFINITIONS, spec, keyed("def-1"))) == registered
    changed = {**spec, "nodes": {"start": {"name": "b", "executor": {"type": "noop"}}}}
    await refused(await post(client, DEFINITIONS, changed, keyed("def-1")), 422, 40125)


SCHEDULE = {"scheduleId": "keyed", "flowName": "backup", "intervalSeconds": 3600}
SCHEDULES = "/api/v1/workflow-schedules"


async def test_schedule_posts_sent_again_answer_the_first_answer(client: Client) -> None:
    first = await ok(await post(client, SCHEDULES, SCHEDULE, keyed("sched-1")))
    again = await ok(await post(client, SCHEDULES, SCHEDULE, keyed("sched-1")))
    assert again == first
    # Without the key the same body is a second create: refused, the id is taken.
    await refused(await post(client, SCHEDULES, SCHEDULE), 409, Code.SCHEDULE_FAILED)
    await refused(
        await post(client, SCHEDULES, {**SCHEDULE, "intervalSeconds": 60}, keyed("sched-1")),
        422, Code.IDEMPOTENCY_REUSED,
    )  # fmt: skip

    pause = f"{SCHEDULES}/keyed/pause"
    paused = await ok(await post(client, pause, {"reason": "x"}, keyed("pause-1")))
    resumed = await ok(await post(client, f"{SCHEDULES}/keyed/resume", {}, keyed("resume-1")))
    assert resumed["status"] == "Active"
    assert await ok(await post(client, pause, {"reason": "x"}, keyed("pause-1"))) == paused
    shown = await ok(await client.get(f"{SCHEDULES}/keyed"))
    assert shown["info"]["status"] == "Active"  # the pause was not made again
    assert [e["type"] for e in shown["events"]] == [
        "ScheduleCreated", "SchedulePaused", "ScheduleResumed",
    ]  # fmt: skip

    # A refusal is answered again the same way, whatever the schedule's state by then.
    gone = f"{SCHEDULES}/nosuch/pause"
    await refused(await post(client, gone, {}, keyed("pause-2")), 404, Code.SCHEDULE_NOT_FOUND)
    await ok(await post(client, SCHEDULES, {**SCHEDULE, "scheduleId": "nosuch"}))
    await refused(await post(client, gone, {}, keyed("pause-2")), 404, Code.SCHEDULE_NOT_FOUND)


async def test_twenty_concurrent_schedule_creates_with_one_key_make_one(client: Client) -> None:
    answers = await asyncio.gather(
        *(post(client, SCHEDULES, SCHEDULE, keyed("sched-twins")) for _ in range(20))
    )
    bodies = [await ok(answer) for answer in answers]
    assert all(body == bodies[0] for body in bodies)
    shown = await ok(await client.get(f"{SCHEDULES}/keyed"))
    assert [e["type"] for e in shown["events"]] == ["ScheduleCreated"]


async def test_concurrent_bulk_twins_act_on_each_flow_once(client: Client) -> None:
    flows = [await create(client, "backup", start=False) for _ in range(10)]
    bulk = {"action": "cancel", "workFlowIds": flows, "reason": "twins"}
    answers = await asyncio.gather(
        *(post(client, FLOWS + "bulk", bulk, keyed("twins")) for _ in range(5))
    )
    bodies = [await ok(answer) for answer in answers]
    assert all(body == bodies[0] for body in bodies)
    for flow_id in flows:
        assert (await types(client, flow_id)).count("CancelRequested") == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "é"])
async def test_a_key_that_cannot_be_one_is_400(client: Client, key: str) -> None:
    answer = await client.post(
        FLOWS, json=CREATE, headers={"Idempotency-Key": key.encode().decode("latin-1")}
    )
    refusal = await refused(answer, 400, Code.BAD_INPUT)
    assert "Idempotency-Key" in refusal["message"]
    assert await total(client) == 0


async def test_the_key_is_written_with_the_effect_or_not_at_all(
    service: Service, database_url: str
) -> None:
    """The append that a request's backend dies in writes neither the flow nor the key: the
    request sent again creates the flow, once."""
    client = service.client
    await slow_first_append(database_url, "FlowCreated")
    sent = asyncio.ensure_future(post(client, FLOWS, CREATE, keyed("cut")))
    await kill_the_slow_append(database_url)
    await refused(await sent, 503, Code.UNAVAILABLE)
    admin = await connect(database_url)
    try:
        assert await admin.fetchval("SELECT count(*) FROM idempotency_keys") == 0
        assert await admin.fetchval("SELECT count(*) FROM events WHERE type = 'FlowCreated'") == 0
    finally:
        await admin.close()
    again: dict[str, Any] = {}
    for _ in range(50):  # the pool may hand out a connection the cut left half-closed once
        answer = await post(client, FLOWS, CREATE, keyed("cut"))
        if answer.status == 200:
            again = await ok(answer)
            break
        await asyncio.sleep(0.05)
    assert again
    assert await ok(await post(client, FLOWS, CREATE, keyed("cut"))) == again
    assert await total(client) == 1


async def test_the_service_takes_the_same_keys(service: Service) -> None:
    engine = service.engine
    caller = Caller(actor="script", idempotency=Idempotency("py-1", "tenant-x"))
    first = (await engine.service.create("b", "t", "backup", caller=caller,
                                                 tenant_id="tenant-x")).flow_id  # fmt: skip
    again = (await engine.service.create("b", "t", "backup", caller=caller,
                                                 tenant_id="tenant-x")).flow_id  # fmt: skip
    assert again == first
    stop = Caller(actor="script", idempotency=Idempotency("py-stop", "tenant-x"))
    stopped = await engine.service.stop(first, "twice", stop)
    assert await engine.service.stop(first, "twice", stop) == stopped
    history = await engine.service.store.read_stream(f"flow-{first}")
    assert [e.type for e in history].count("FlowStopped") == 1


async def test_expired_keys_are_swept_and_can_be_used_again(service: Service) -> None:
    engine = service.engine
    pool = engine.pool
    short = Idempotency("brief", "", timedelta(seconds=1))
    caller = Caller(idempotency=short)
    first = (await engine.service.create("b", "t", "backup", caller=caller)).flow_id
    request = fingerprint("create", "", "", "backup", "b", "t", {}, False)
    assert await find(pool, short, request) is not None
    await asyncio.sleep(1.2)
    assert await find(pool, short, request) is None  # expired: a new request
    second = (await engine.service.create("b", "t", "backup", caller=caller)).flow_id
    assert second != first
    await asyncio.sleep(1.2)
    assert await sweep(pool) == 1
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0
