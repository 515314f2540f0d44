"""Definitions over REST belong to the tenant that registered their first version: another
tenant can neither replace, see, start nor schedule them; definitions from code (and those
registered while the server was open) are shared by every tenant."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from flowlog.api import keys
from flowlog.eventstore import RecordedEvent
from flowlog.workflow.errors import Code
from flowlog.workflow.projection import project_definitions
from flowlog.workflow.streams import DEFINITION_REGISTERED
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import DEFINITIONS, FLOWS, A, B, create, detail, ok, post, refused
from tests.console.test_access import session_of

SCHEDULES = "/api/v1/workflow-schedules"


def shared_spec(url: str) -> dict[str, Any]:
    """A definition whose one node calls ``url`` (what the attacker would point at itself)."""
    http = {"type": "http", "url": url}
    return {"name": "shared", "nodes": {"start": {"name": "call", "executor": http}}}


NOOP_SPEC = {"name": "shared", "nodes": {"start": {"name": "step", "executor": {"type": "noop"}}}}


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def register(service: Service, body: dict[str, Any], headers: Any) -> dict[str, Any]:
    data: dict[str, Any] = await ok(await post(service.client, DEFINITIONS, body, headers))
    return data


async def test_another_tenant_cannot_make_a_new_version_of_a_definition(guarded: Service) -> None:
    client = guarded.client
    mine = await register(guarded, shared_spec("http://127.0.0.1:9/alice"), A)
    before = await ok(await client.get(f"{DEFINITIONS}/shared", headers=A))

    attack = await post(client, DEFINITIONS, shared_spec("http://127.0.0.1:9/bob"), B)
    refusal = await refused(attack, 409, Code.DEFINITION_TAKEN)
    assert "another tenant" in refusal["message"]
    # The same content under the same name is refused too (it would not be a new version, but
    # it must not tell the attacker that it guessed the content either).
    again = await post(client, DEFINITIONS, shared_spec("http://127.0.0.1:9/alice"), B)
    await refused(again, 409, Code.DEFINITION_TAKEN)

    # Nothing changed: one version, A's, and A's next flow runs A's version.
    assert await ok(await client.get(f"{DEFINITIONS}/shared", headers=A)) == before
    flow_id = await create(client, "shared", start=False, headers=A)
    assert (await detail(client, flow_id, A))["info"]["definitionVersion"] == mine["version"]
    # Its owner still makes new versions.
    newer = await register(guarded, NOOP_SPEC, A)
    assert newer["version"] != mine["version"]


async def test_a_tenant_sees_only_its_own_definitions_and_those_from_code(
    guarded: Service,
) -> None:
    client = guarded.client
    await register(guarded, NOOP_SPEC, A)

    def names(data: dict[str, Any]) -> list[str]:
        return [d["name"] for d in data["definitions"]]

    theirs = names(await ok(await client.get(DEFINITIONS, headers=B)))
    mine = names(await ok(await client.get(DEFINITIONS, headers=A)))
    assert "shared" in mine
    assert "shared" not in theirs
    assert {"backup", "fussy"} <= set(theirs) & set(mine)  # code: everyone's

    unknown = await refused(await client.get(f"{DEFINITIONS}/nosuch", headers=B), 404, 40104)
    hidden = await refused(await client.get(f"{DEFINITIONS}/shared", headers=B), 404, 40104)
    assert hidden["message"] == unknown["message"].replace("nosuch", "shared")
    await ok(await client.get(f"{DEFINITIONS}/backup", headers=B))


async def test_a_tenant_cannot_start_or_schedule_another_tenants_definition(
    guarded: Service,
) -> None:
    client = guarded.client
    await register(guarded, NOOP_SPEC, A)
    body = {"flowName": "shared", "bizId": "b", "bizType": "t", "start": True}
    await refused(await post(client, FLOWS, body, B), 404, Code.DEFINE_NOT_FOUND)
    assert (await ok(await client.get(FLOWS, headers=B), paged=True))["page"]["total"] == 0

    schedule = {"scheduleId": "steal", "flowName": "shared", "intervalSeconds": 60}
    await refused(await post(client, SCHEDULES, schedule, B), 404, Code.DEFINE_NOT_FOUND)
    await refused(await client.get(f"{SCHEDULES}/steal", headers=B), 404, Code.SCHEDULE_NOT_FOUND)

    # B's own schedule cannot be changed to fire A's definition either.
    own = {"scheduleId": "own", "flowName": "backup", "intervalSeconds": 60, "paused": True}
    await ok(await post(client, SCHEDULES, own, B))
    changed = {"flowName": "shared", "intervalSeconds": 60}
    answer = await client.put(f"{SCHEDULES}/own", json=changed, headers=B)
    await refused(answer, 404, Code.DEFINE_NOT_FOUND)
    shown = await ok(await client.get(f"{SCHEDULES}/own", headers=B))
    assert shown["info"]["spec"]["flowName"] == "backup"

    # Its owner can do all of it.
    await ok(await post(client, FLOWS, body, A))
    await ok(await post(client, SCHEDULES, {**schedule, "paused": True}, A))


async def test_a_bulk_action_by_another_tenants_definition_selects_nothing(
    guarded: Service,
) -> None:
    client = guarded.client
    await register(guarded, NOOP_SPEC, A)
    flow_id = await create(client, "shared", start=False, headers=A)
    body = {"action": "cancel", "filter": {"flowName": "shared"}, "reason": "x"}
    data = await ok(await post(client, FLOWS + "bulk", body, B))
    assert data["results"] == []
    assert (await detail(client, flow_id, A))["info"]["status"] == "Initializing"


async def test_the_console_shows_a_tenant_only_its_definitions(guarded: Service) -> None:
    client = guarded.client
    await register(guarded, NOOP_SPEC, A)
    bob = await session_of(client, "token-b")
    alice = await session_of(client, "token-a")

    listing = await (await client.get("/definitions", headers=bob)).text()
    assert "/definitions/backup" in listing
    assert "/definitions/shared" not in listing
    assert "/definitions/shared" in await (await client.get("/definitions", headers=alice)).text()

    assert (await client.get("/definitions/shared", headers=bob)).status == 404
    assert (await client.get("/definitions/shared", headers=alice)).status == 200

    flows_page = await (await client.get("/", headers=bob)).text()
    assert '<option value="shared"' not in flows_page
    assert '<option value="shared"' in await (await client.get("/", headers=alice)).text()


async def test_two_tenants_racing_for_a_new_name_one_owns_it(guarded: Service) -> None:
    client = guarded.client
    answers = await asyncio.gather(
        *(post(client, DEFINITIONS, NOOP_SPEC, who) for who in (A, B) * 4)
    )
    statuses = [a.status for a in answers]
    assert set(statuses) == {200, 409}, statuses
    winner = A if statuses[0] == 200 else B
    assert all(s == statuses[0] for s in statuses[::2])  # the same tenant won every time
    listed = await ok(await client.get(f"{DEFINITIONS}/shared", headers=winner))
    assert len(listed["versions"]) == 1


async def test_ownership_survives_a_restart_and_is_recorded(
    make_service: MakeService, guarded: Service
) -> None:
    await register(guarded, NOOP_SPEC, A)
    later = await make_service(tokens=TOKENS)  # another process: knows the name from the log
    await refused(await post(later.client, DEFINITIONS, NOOP_SPEC, B), 409, Code.DEFINITION_TAKEN)
    body = {"flowName": "shared", "bizId": "b", "bizType": "t"}
    await refused(await post(later.client, FLOWS, body, B), 404, Code.DEFINE_NOT_FOUND)
    await ok(await post(later.client, FLOWS, body, A))

    # The log says who registered it: the tenant in the event, the token in its metadata.
    recorded = await later.app[keys.ENGINE].service.store.read_stream("definition-shared")
    assert [(e.data["tenant"], e.metadata["actor"]) for e in recorded] == [
        ("tenant-a", "token:alice")
    ]


async def test_an_open_server_keeps_sharing_definitions(service: Service) -> None:
    client = service.client
    await ok(await post(client, DEFINITIONS, NOOP_SPEC))
    changed = {**NOOP_SPEC, "nodes": {"start": {"name": "other", "executor": {"type": "noop"}}}}
    await ok(await post(client, DEFINITIONS, changed))  # a new version, as before
    listed = await ok(await client.get(f"{DEFINITIONS}/shared"))
    assert len(listed["versions"]) == 2


async def test_shared_definitions_are_seen_by_all_and_changed_by_none(
    make_service: MakeService,
) -> None:
    opened = await make_service()
    await ok(await post(opened.client, DEFINITIONS, NOOP_SPEC))  # while the server was open
    guarded = await make_service(tokens=TOKENS)
    for who in (A, B):
        await ok(await guarded.client.get(f"{DEFINITIONS}/shared", headers=who))
        body = {"flowName": "shared", "bizId": "b", "bizType": "t"}
        await ok(await post(guarded.client, FLOWS, body, who))
    changed = {**NOOP_SPEC, "nodes": {"start": {"name": "other", "executor": {"type": "noop"}}}}
    refusal = await refused(
        await post(guarded.client, DEFINITIONS, changed, A), 409, Code.DEFINITION_TAKEN
    )
    assert "shared by every tenant" in refusal["message"]


def _registered(data: dict[str, Any], version: int) -> RecordedEvent:
    return RecordedEvent(
        position=version, stream_id="definition-x", version=version, type=DEFINITION_REGISTERED,
        data=data, metadata={}, recorded_at=datetime(2026, 1, 1, tzinfo=UTC), transaction_id=1,
    )  # fmt: skip


def test_the_owner_of_every_version_is_the_first_versions_tenant() -> None:
    def event(version: int, **extra: Any) -> RecordedEvent:
        described = {"name": "x", "nodes": {}, "spec": {"name": "x"}}
        data = {"name": "x", "version": f"v{version}", "nodeNames": [], "definition": described}
        return _registered(data | extra, version)

    rows = project_definitions([event(1, tenant="tenant-a"), event(2, tenant="")])
    assert [r.tenant_id for r in rows] == ["tenant-a", "tenant-a"]
    # Recorded before definitions had owners: shared.
    assert [r.tenant_id for r in project_definitions([event(1)])] == [""]
    code = {"name": "x", "version": "v1", "nodeNames": [], "definition": {"name": "x"}}
    assert [r.tenant_id for r in project_definitions([_registered(code, 1)])] == [None]
