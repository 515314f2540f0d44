"""Archived flows over REST and in the console: 410 Gone with where the archive is; a flow
sealed for its archive takes no command (issue 14)."""

from __future__ import annotations

from pathlib import Path

import orjson

from flowlog.workflow.commands import ArchiveFlow
from flowlog.workflow.decide import decide
from flowlog.workflow.errors import Code
from tests.api.conftest import TOKENS, MakeService
from tests.api.helpers import FLOWS, A, B, create, ok, refused, wait_status
from tests.archive.test_archival import archive


async def test_an_archived_flow_is_gone_with_its_archive_named(
    make_service: MakeService, database_url: str, tmp_path: Path
) -> None:
    service = await make_service(tokens=TOKENS)
    client = service.client
    flow_id = await create(client, headers=A)
    await wait_status(client, flow_id, {"Finished"}, headers=A)
    report = await archive(database_url, service.engine, tmp_path)
    assert report.flows == 1

    gone = await refused(await client.get(FLOWS + flow_id, headers=A), 410, Code.FLOW_ARCHIVED)
    assert gone["data"]["archiveId"] == report.archives[0]
    assert gone["data"]["file"].endswith(".jsonl.gz")
    for path in (f"{flow_id}/events", f"{flow_id}/state", f"{flow_id}/events/stream"):
        await refused(await client.get(FLOWS + path, headers=A), 410, Code.FLOW_ARCHIVED)
    await refused(
        await client.post(FLOWS + "start", json={"workFlowId": flow_id}, headers=A),
        410, Code.FLOW_ARCHIVED,
    )  # fmt: skip
    # Another tenant's archived flow does not exist for it, as any other of its flows.
    await refused(await client.get(FLOWS + flow_id, headers=B), 404, Code.FLOW_NOT_FOUND)
    page = await client.get(f"/flows/{flow_id}", headers=A)
    assert page.status == 410
    text = await page.text()
    assert "<h1>Archived</h1>" in text
    assert report.archives[0] in text


async def test_a_sealed_flow_refuses_commands_with_410(make_service: MakeService) -> None:
    service = await make_service()
    client = service.client
    flow_id = await create(client)
    await wait_status(client, flow_id, {"Finished"})
    state = await service.engine.service.get(flow_id)
    seal = decide(state, ArchiveFlow("a-test"), None, state.updated_at)
    await service.engine.service.flows.append(state, seal)
    found = await client.get(FLOWS + flow_id)
    assert found.status == 200  # still in the hot log until its archive removes it
    page = await client.get(f"/flows/{flow_id}")
    assert page.status == 200
    text = await page.text()
    assert "FlowArchived" in text
    assert "Archived: its retention is over" in text
    assert "data-action=" not in text  # the page offers what decide accepts: nothing
    for route, body in (
        ("start", {"workFlowId": flow_id}),
        ("retry", {"workFlowId": flow_id}),
        ("context", {"workFlowId": flow_id, "key": "k", "value": 1}),
    ):
        await refused(await client.post(FLOWS + route, json=body), 410, Code.FLOW_ARCHIVED)


async def test_replays_and_bulk_actions_on_an_archived_flow_answer_410_and_show_no_path(
    make_service: MakeService, database_url: str, tmp_path: Path
) -> None:
    service = await make_service(tokens=TOKENS)
    client = service.client
    body = {"flowName": "backup", "bizId": "b-1", "bizType": "cluster", "start": True}
    keyed = {"Idempotency-Key": "create-once", **A}
    first = await ok(await client.post(FLOWS, json=body, headers=keyed))
    flow_id = first["workFlowId"]
    await wait_status(client, flow_id, {"Finished"}, headers=A)
    report = await archive(database_url, service.engine, tmp_path)
    (archive_id,) = report.archives

    # The 410 names the archive and its file, never where the server keeps it.
    gone = await refused(await client.get(FLOWS + flow_id, headers=A), 410, Code.FLOW_ARCHIVED)
    assert gone["data"] == {
        "workFlowId": flow_id,
        "archiveId": archive_id,
        "file": f"{archive_id}.jsonl.gz",
        "archivedAt": gone["data"]["archivedAt"],
    }
    assert str(tmp_path) not in orjson.dumps(gone).decode()

    # The create's key sent again: the flow it made was archived, as every command says.
    again = await client.post(FLOWS, json=body, headers=keyed)
    replayed = await refused(again, 410, Code.FLOW_ARCHIVED)
    assert replayed["data"] == gone["data"]

    # A bulk action names it: its line says archived; for another tenant it does not exist.
    for headers, code in ((A, Code.FLOW_ARCHIVED), (B, Code.FLOW_NOT_FOUND)):
        answer = await ok(
            await client.post(
                FLOWS + "bulk", json={"action": "start", "workFlowIds": [flow_id]}, headers=headers
            )
        )
        assert [(r["workFlowId"], r["code"]) for r in answer["results"]] == [(flow_id, code)]
        assert str(tmp_path) not in orjson.dumps(answer).decode()
