"""The Python client (app/client) against a real ``flowlog serve``."""

from __future__ import annotations

import pydantic
import pytest
from aiohttp import web

from flowlog.client import (
    BadRequest,
    Conflict,
    FlowEnded,
    FlowlogClient,
    NotFound,
    StreamEvent,
    Unauthorized,
)
from flowlog.workflow.errors import Code
from tests.client.conftest import DEFINITION, QUICK, TOKEN, StartProxy


async def test_a_flow_from_create_to_its_end(server: str) -> None:
    async with FlowlogClient(server, token=TOKEN) as flowlog:
        registered = await flowlog.register_definition(QUICK)
        assert registered.nodeNames == ["one", "two"]
        created = await flowlog.create("client-quick", "b-1", "cluster", context={"n": 1},
                                       start=True)  # fmt: skip
        assert created.info.status in {"Processing", "Finished"}
        assert flowlog.position is None  # positions come only from servers with replicas
        done = await flowlog.wait(created.workFlowId, within=30)
        assert done.info.status == "Finished"
        assert [n.name for n in done.nodes] == ["one", "two"]
        history = await flowlog.history(created.workFlowId)
        assert [e.version for e in history] == list(range(1, len(history) + 1))
        assert history[0].type == "FlowCreated"
        assert history[-1].type == "FlowFinished"
        first = await flowlog.state(created.workFlowId, version=1)
        assert first.status == "Initializing"
        assert first.context["n"] == 1
        assert first.context["tenantId"] == "tenant-a"
        changes = await flowlog.diff(created.workFlowId, 1, len(history))
        assert any(c.where == "status" for c in changes.changes)
        listed = [f.id async for f in flowlog.list_flows(flow_name="client-quick")]
        assert listed == [created.workFlowId]
        followed = [e async for e in flowlog.follow(created.workFlowId)]
        assert [e.version for e in followed] == [e.version for e in history]
        assert all(isinstance(e, StreamEvent) for e in followed)
        names = [d.name for d in (await flowlog.definitions()).definitions]
        assert "client-quick" in names
        assert (await flowlog.definition("client-quick")).latestVersion == registered.version


async def test_refusals_are_typed_and_carry_the_envelopes_code(server: str) -> None:
    async with FlowlogClient(server, token=TOKEN) as flowlog:
        with pytest.raises(NotFound) as missing:
            await flowlog.detail("0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b")  # no flow has it
        assert (missing.value.code, missing.value.status) == (Code.FLOW_NOT_FOUND, 404)
        with pytest.raises(BadRequest) as malformed:
            await flowlog.detail("no-such-flow")  # no flow could have it
        assert (malformed.value.code, malformed.value.status) == (Code.BAD_INPUT, 400)
        await flowlog.register_definition(QUICK)
        created = await flowlog.create("client-quick", "b", "t", start=True)
        await flowlog.wait(created.workFlowId, within=30)
        with pytest.raises(Conflict) as refused:
            await flowlog.start(created.workFlowId, reason="again")
        assert refused.value.code == Code.START_FAILED
        bad = {
            **DEFINITION,
            "nodes": {
                **DEFINITION["nodes"],  # type: ignore[dict-item]
                "approve": {"name": "a", "kind": "callback", "executor": {"type": "fail"}},
            },
        }
        with pytest.raises(BadRequest) as invalid:
            await flowlog.register_definition(bad)
        assert invalid.value.code == Code.INVALID_DEFINITION
        with pytest.raises(FlowEnded):
            await flowlog.wait(created.workFlowId, {"Error"}, within=10)
        # The request models are the server's: bad input is refused before it is sent.
        with pytest.raises(pydantic.ValidationError):
            await flowlog.create("", "b", "t")
    async with FlowlogClient(server, token="wrong") as stranger:
        with pytest.raises(Unauthorized) as denied:
            await stranger.detail(created.workFlowId)
        assert denied.value.code == Code.UNAUTHORIZED


async def test_callbacks_bulk_and_schedules(server: str) -> None:
    async with FlowlogClient(server, token=TOKEN) as flowlog:
        await flowlog.register_definition(DEFINITION)
        created = await flowlog.create("client-demo", "db-1", "cluster", start=True)
        flow_id = created.workFlowId
        waiting = await flowlog.wait(flow_id, {"Processing"}, within=30)
        for _ in range(100):
            if waiting.waiting is not None:
                break
            waiting = await flowlog.detail(flow_id)
        assert waiting.waiting is not None
        assert waiting.waiting.callbackToken is not None
        await flowlog.complete_callback(token=waiting.waiting.callbackToken, result="ok",
                                        reason="looks right")  # fmt: skip
        assert (await flowlog.wait(flow_id, within=30)).info.status == "Finished"

        others = [(await flowlog.create("client-demo", f"x{n}", "t")).workFlowId for n in range(3)]
        answer = await flowlog.bulk("cancel", flow_ids=others, reason="not needed")
        assert {r.workFlowId for r in answer.results} == set(others)
        assert {(await flowlog.detail(i)).info.status for i in others} == {"Canceled"}

        made = await flowlog.create_schedule({
            "scheduleId": "nightly", "flowName": "client-demo", "bizType": "t",
            "cron": "0 3 * * *", "timezone": "UTC",
        })  # fmt: skip
        assert made.status == "Active"
        assert (await flowlog.pause_schedule("nightly", reason="freeze")).status == "Paused"
        assert (await flowlog.resume_schedule("nightly")).status == "Active"
        assert [s.scheduleId async for s in flowlog.schedules()] == ["nightly"]
        assert (await flowlog.schedule("nightly")).info.spec.cron == "0 3 * * *"
        assert (await flowlog.delete_schedule("nightly", reason="gone")).status == "Deleted"


async def test_paging_walks_every_flow_once(server: str) -> None:
    async with FlowlogClient(server, token=TOKEN) as flowlog:
        await flowlog.register_definition(QUICK)
        made = {(await flowlog.create("client-quick", f"p{n}", "t")).workFlowId for n in range(23)}
        seen = [f.id async for f in flowlog.list_flows(page_size=10)]
        assert len(seen) == len(set(seen)) == 23
        assert set(seen) == made


async def test_a_write_whose_answer_is_lost_is_retried_once_in_effect(
    server: str, start_proxy: StartProxy
) -> None:
    """The proxy forwards the first create, then drops the connection before its answer:
    the client sends it again with the same Idempotency-Key, and one flow exists."""

    create = ("POST", "/api/v1/workflow/")

    def drop_first_post(request: web.Request, number: int) -> str | None:
        first = (request.method, request.path) == create and create not in proxy.seen[:number]
        return "drop" if first else None

    proxy = await start_proxy(drop_first_post)
    async with FlowlogClient(proxy.url, token=TOKEN, backoff=0.01) as flowlog:
        await flowlog.register_definition(QUICK)
        created = await flowlog.create("client-quick", "once", "t")
        assert proxy.seen.count(create) == 2  # sent twice
        flows = [f.id async for f in flowlog.list_flows(biz_id="once")]
        assert flows == [created.workFlowId]  # made once


async def test_a_schedule_and_a_definition_whose_answers_are_lost_are_made_once(
    server: str, start_proxy: StartProxy
) -> None:
    """The proxy drops the first answer of each POST: the client's retry (same key) answers
    what the first request did, instead of "the id is taken"."""

    def drop_first_of_each(request: web.Request, number: int) -> str | None:
        seen = (request.method, request.path)
        return "drop" if request.method == "POST" and seen not in proxy.seen[:number] else None

    proxy = await start_proxy(drop_first_of_each)
    async with FlowlogClient(proxy.url, token=TOKEN, backoff=0.01) as flowlog:
        registered = await flowlog.register_definition(QUICK)
        assert registered.name == "client-quick"
        schedule = {"scheduleId": "lost", "flowName": "client-quick", "intervalSeconds": 3600,
                    "paused": True}  # fmt: skip
        made = await flowlog.create_schedule(schedule)
        assert made.scheduleId == "lost"
        assert made.status == "Paused"
        assert proxy.seen.count(("POST", "/api/v1/workflow-schedules")) == 2
        assert [s.scheduleId async for s in flowlog.schedules()] == ["lost"]
        detail = await flowlog.schedule("lost")
        assert [e.type for e in detail.events] == ["ScheduleCreated"]


async def test_following_resumes_a_cut_stream_where_it_stopped(
    server: str, start_proxy: StartProxy
) -> None:
    def cut_streams(request: web.Request, number: int) -> str | None:
        return "cut" if request.path.endswith("/events/stream") else None

    proxy = await start_proxy(cut_streams)
    async with FlowlogClient(proxy.url, token=TOKEN, backoff=0.01) as flowlog:
        await flowlog.register_definition(QUICK)
        created = await flowlog.create("client-quick", "s", "t", start=True)
        events = [e async for e in flowlog.follow(created.workFlowId)]
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "FlowFinished"
    assert sum(1 for _, p in proxy.seen if p.endswith("/events/stream")) >= 3  # cut, resumed
