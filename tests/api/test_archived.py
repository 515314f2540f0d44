"""Archived flows over REST and in the console: 410 Gone with where the archive is; a flow
sealed for its archive takes no command (issue 14)."""

from __future__ import annotations

from pathlib import Path

from app.workflow.decide import ArchiveFlow, decide
from app.workflow.errors import Code
from tests.api.conftest import TOKENS, MakeService
from tests.api.helpers import FLOWS, A, B, create, refused, wait_status
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
