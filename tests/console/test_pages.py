"""The console's pages and fragments as the server renders them (the browser tests drive them
in Chromium): lists and filters, a flow at any version, definitions, errors as pages, the live
stream, and every text a user controls escaped."""

from __future__ import annotations

import asyncio
import html
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from flowlog.api import keys
from flowlog.schedules.events import ScheduleCreated, ScheduleSkipped
from flowlog.schedules.store import ScheduleRepository
from flowlog.workflow.caller import Caller
from tests.api.conftest import Service
from tests.api.helpers import (
    DEFINITIONS,
    FLOWS,
    Client,
    create,
    events,
    next_message,
    ok,
    post,
    wait_for,
    wait_status,
)


async def page(client: Client, path: str, status: int = 200) -> str:
    answer = await client.get(path, allow_redirects=False)
    text = await answer.text()
    assert answer.status == status, text[:2000]
    assert answer.content_type == "text/html"
    assert "render;dur=" in answer.headers["Server-Timing"]
    for leak in ("Traceback", 'File "', "site-packages"):
        assert leak not in text
    return text


def row_ids(text: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', text)


async def test_the_flows_page_lists_filters_and_pages(client: Client) -> None:
    finished = await create(client, "backup", biz_id="alpha")
    await wait_status(client, finished, {"Finished"})
    waiting = [await create(client, "backup", start=False, biz_id=f"w-{i}") for i in range(12)]
    text = await page(client, "/")
    assert row_ids(text) == [*reversed(waiting), finished]
    assert '<span class="count-label">All</span> <span class="count">13</span>' in text
    assert '<span class="count-label">Initializing</span> <span class="count">12</span>' in text
    assert 'end <span class="muted">(Finished)</span>' in text  # the finished flow's last node
    assert "none yet" in text  # flows that ran no node

    only = await page(client, "/?status=Finished")
    assert row_ids(only) == [finished]
    assert 'href="/?status=Finished" aria-current="true"' in only
    by_biz = await page(client, "/?bizId=alpha&status=&bizType=")
    assert row_ids(by_biz) == [finished]

    first = await page(client, "/?pageSize=10&status=Initializing")
    assert row_ids(first) == list(reversed(waiting))[:10]
    older = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert older is not None
    second = await page(client, html.unescape(older.group(1)))
    assert row_ids(second) == list(reversed(waiting))[10:]
    assert 'rel="next"' not in second
    assert 'rel="first"' in second
    assert "status=Initializing" in html.unescape(older.group(1))  # the filters stay


async def test_bad_filters_are_a_page_that_says_what_is_wrong(client: Client) -> None:
    for path, words in [
        ("/?status=Sleeping", "status"),
        ("/?pageSize=7", "pageSize must be one of 10, 25, 50, 100"),
        ("/?createdFrom=yesterday", "createdFrom"),
        ("/?cursor=forged", "not a paging cursor"),
        # A cursor that decodes but holds what PostgreSQL cannot take: still a 400 page.
        ("/?cursor=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzAxOjAwIiwiYSJd", "not a paging cursor"),
        ("/?color=red", "color"),
        ("/?waiting=soon", "waiting must be one of callback, timer"),
    ]:
        text = await page(client, path, 400)
        assert '<p class="problem" role="alert">' in text
        assert words in html.unescape(text), path


RESTORE = {
    "name": "restore",
    "nodes": {
        "start": {"name": "checkBackup", "executor": {"type": "noop"}, "success": "approval"},
        "approval": {"name": "approval", "kind": "callback", "deadline": 86400,
                     "executor": {"type": "noop"}, "success": "wipe"},
        "wipe": {"name": "wipeCluster", "executor": {"type": "noop"}},
    },
}  # fmt: skip
FAILING_BACKUP = {
    "name": "failing-backup",
    "nodes": {
        "start": {"name": "upload", "executor": {"type": "fail", "code": 7002}, "fail": "fail"},
        "fail": {"name": "backupFail", "executor": {"type": "noop"}},
    },
}


def cell(text: str, flow_id: str, label: str) -> str:
    """The text of a row's cell (by its data-label), tags left out."""
    row = text.split(f'<tr data-id="{flow_id}"', 1)[1].split("</tr>", 1)[0]
    found = re.search(rf'<td[^>]* data-label="{label}">(.*?)</td>', row, re.S)
    assert found is not None, row
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


async def test_the_list_says_what_a_flow_waits_for_and_where_one_failed(client: Client) -> None:
    for spec in (RESTORE, FAILING_BACKUP):
        await ok(await post(client, DEFINITIONS, spec))
    failed = await create(client, "failing-backup")
    await wait_status(client, failed, {"Error"})
    waiting = await create(client, "restore")

    async def waits() -> bool:
        return (await ok(await client.get(FLOWS + waiting))).get("waiting") is not None

    await wait_for(waits)
    text = await page(client, "/")
    assert re.fullmatch(
        r"Waiting: approval \(a person or a callback\), for \d+(\.\d)? m?s; deadline in 23 h",
        cell(text, waiting, "Node"),
    )
    assert '<span class="badge st-waiting"' in text.split(f'<tr data-id="{waiting}"')[1]
    # The node whose failure ended the flow, not the fail handler that ran after it.
    assert cell(text, failed, "Node") == "upload (Error)"
    # An open flow's duration is a whole figure "so far", not one that seems cut off.
    assert re.fullmatch(r"\d+(\.\d)? m?s so far", cell(text, waiting, "Took"))
    assert "…" not in text

    only = await page(client, "/?waiting=callback")
    assert row_ids(only) == [waiting]
    assert '<option value="callback" selected>for a person or a callback</option>' in only
    assert '<span id="list-total">1</span> flow matches' in only
    assert 'data-all-matching="no"' in only
    assert row_ids(await page(client, "/?waiting=timer")) == []
    assert row_ids(await page(client, "/?waiting=callback&status=Error")) == []

    flow = await page(client, f"/flows/{waiting}")
    line = flow.split('<p class="status-line">', 1)[1].split("</p>", 1)[0]
    assert re.search(
        r"Waiting: approval \(a person or a callback\), for [^;]+; deadline in 23 h", line
    )
    assert "so far" in flow
    assert "…" not in flow


async def test_a_flow_page_at_now_and_at_any_version(service: Service) -> None:
    client = service.client
    flow_id = await create(client, "fussy")
    await wait_status(client, flow_id, {"Error"})
    history = await events(client, flow_id)
    text = await page(client, f"/flows/{flow_id}")
    assert '<h2 id="at-title">Now</h2>' in text
    assert text.count('<g class="node ') == 2  # check and done
    assert 'data-key="start"' in text
    assert re.search(r'<g class="node st-error[^"]*" [^>]*data-key="start"', text)
    assert len(re.findall(r'<tr id="event-\d+"', text)) == len(history)
    assert 'data-action="retry"' in text
    assert 'data-action="stop"' not in text  # the state allows retry only
    assert "7001" in text  # the node's error code
    assert "<time datetime=" in text

    first = await page(client, f"/flows/{flow_id}?version=1")
    assert "As it was at version 1" in first
    assert 'value="1"' in first
    assert "No node has run yet." in first
    assert '<tr id="event-1" class="shown" aria-current="true">' in first

    for bad in ("0", str(len(history) + 1), "x"):
        assert "version must be a number" in await page(
            client, f"/flows/{flow_id}?version={bad}", 400
        )
    assert "does not exist" in await page(client, "/flows/no-such-flow", 404)
    go = await client.get(f"/go?id={flow_id}", allow_redirects=False)
    assert go.status == 303
    assert go.headers["Location"] == f"/flows/{flow_id}"
    await page(client, "/go?id=no-such-flow", 404)


async def test_the_fragments_swap_in_the_same_drawing(service: Service) -> None:
    client = service.client
    flow_id = await create(client, "backup")
    await wait_status(client, flow_id, {"Finished"})
    latest = len(await events(client, flow_id))
    part = await ok_json(client, f"/console/flows/{flow_id}?version=2&since=3")
    assert (part["version"], part["latest"], part["status"]) == (2, latest, "Finished")
    assert part["eventType"] == "FlowStarted"
    assert "As it was at version 2" in part["panel"]
    assert re.findall(r'<tr id="event-(\d+)"', part["history"]) == [
        str(v) for v in range(4, latest + 1)
    ]
    listed = await ok_json(client, "/console/flows?status=Finished")
    assert listed["total"] == 1
    assert row_ids(listed["rows"]) == [flow_id]
    assert "count-label" in listed["counts"]


async def ok_json(client: Client, path: str) -> Any:
    answer = await client.get(path)
    assert answer.status == 200, await answer.text()
    assert answer.content_type == "application/json"
    return orjson.loads(await answer.read())


async def test_the_definitions_pages(client: Client) -> None:
    await wait_status(client, await create(client, "backup"), {"Finished"})
    text = await page(client, "/definitions")
    assert '<a href="/definitions/backup">backup</a>' in text
    assert "backup → updateBackupRecord → end" in text
    assert 'href="/?flowName=backup&amp;status=Finished">Finished 1</a>' in text
    one = await page(client, "/definitions/backup")
    assert one.count('<g class="node st-plain"') == 4
    assert "end in Error" in one  # the handler's own failure ends the flow
    assert "does not exist" in await page(client, "/definitions/nope", 404)
    assert "does not exist" in await page(client, "/definitions/backup?version=0000", 404)


HOSTILE = ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>', "</textarea><b>b</b>"]


async def test_every_text_a_user_wrote_is_escaped(client: Client) -> None:
    hostile_node = {
        "name": "hostile",
        "nodes": {
            "start": {"name": HOSTILE[1], "executor": {"type": "fail", "message": HOSTILE[0]},
                      "fail": "clean"},
            "clean": {"name": HOSTILE[2], "executor": {"type": "noop"}},
        },
    }  # fmt: skip
    await ok(await post(client, DEFINITIONS, hostile_node))
    await asyncio.sleep(0)
    flow_id = await create(
        client, "backup", biz_id=HOSTILE[0], biz_type=HOSTILE[1], start=False,
        context={HOSTILE[0]: HOSTILE[1], "k": HOSTILE[2]},
    )  # fmt: skip
    await ok(await post(client, FLOWS + "stop", {"workFlowId": flow_id, "reason": HOSTILE[1]}))
    registered = [
        r for r in (await ok(await client.get(DEFINITIONS)))["definitions"]
        if r["name"] == "hostile"
    ]  # fmt: skip
    assert registered
    for _ in range(100):  # the catalog reload (every 2 s) makes the REST definition known
        answer = await post(
            client, FLOWS, {"flowName": "hostile", "bizId": HOSTILE[2], "bizType": "t",
                            "start": True},
        )  # fmt: skip
        if answer.status == 200:
            break
        await asyncio.sleep(0.1)
    hostile_flow = (await ok(answer))["workFlowId"]
    await wait_status(client, hostile_flow, {"Error"})

    texts = [
        await page(client, "/"),
        await page(client, f"/flows/{flow_id}"),
        await page(client, f"/flows/{flow_id}?version=1"),
        await page(client, f"/flows/{hostile_flow}"),
        await page(client, "/definitions"),
        await page(client, "/definitions/hostile"),
    ]
    fragment = await ok_json(client, f"/console/flows/{hostile_flow}?since=0")
    texts += [fragment["panel"], fragment["history"], fragment["head"]]
    listed = await ok_json(client, "/console/flows")
    texts.append(listed["rows"])
    for text in texts:
        for raw in ("<script>alert", "<img src=x", "<b>b</b>", "</textarea><b>"):
            assert raw not in text
    joined = "\n".join(texts)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in joined
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in joined


async def test_the_live_stream_says_when_the_log_grows(client: Client) -> None:
    async with client.get("/console/live") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        await create(client, "backup", start=False)
        message = await next_message(stream)
        assert message is not None
        assert message.get("event") == "changed"


async def test_a_refused_fire_says_why_on_the_schedule_page(service: Service) -> None:
    engine = service.app[keys.ENGINE]
    spec = {"flowName": "backup", "intervalSeconds": 3600, "bizIdTemplate": "b-<x>"}
    at = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    repository = ScheduleRepository(engine.service.store)
    events = [
        ScheduleCreated(schedule_id="old", spec=spec),
        ScheduleSkipped(first=at, last=at, count=1, why="refused", error="bizId: too <long>"),
    ]
    await repository.append(None, "old", events, Caller("old code"), 0)
    page = await (await service.client.get("/schedules/old")).text()
    assert "1 fire skipped (refused)" in page
    assert "bizId: too &lt;long&gt;" in page  # the reason, escaped
