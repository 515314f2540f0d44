"""Event rules over REST (``/api/v1/event-rules``): made, listed, read, changed and deleted;
their templates and definitions checked; one effect per Idempotency-Key; a tenant's own only;
and who may do what."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowlog.triggers.events import rule_stream
from flowlog.triggers.rules import MAX_RULES_PER_TYPE
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import DEFINITIONS, A, B, ok, post, refused
from tests.triggers.helpers import RULES, make_rule

NOOP = {"nodes": {"start": {"name": "step", "executor": {"type": "noop"}}}}


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def test_a_rule_is_made_read_listed_changed_and_deleted(service: Service) -> None:
    client = service.client
    rule = await make_rule(client, source="/clusters", context={"c": "{{data.clusterId}}"},
                           description="backups on request")  # fmt: skip
    assert rule["source"] == "/clusters"
    assert rule["version"] == 1
    assert await ok(await client.get(f"{RULES}/{rule['id']}")) == rule
    listed = await ok(await client.get(RULES), paged=True)
    assert [r["id"] for r in listed["data"]["rules"]] == [rule["id"]]
    change = {"source": None, "bizId": "{{subject}}"}
    changed = await ok(await client.patch(f"{RULES}/{rule['id']}", json=change))
    assert (changed["source"], changed["bizId"], changed["version"]) == (None, "{{subject}}", 2)
    assert changed["context"] == rule["context"]
    assert changed["createdAt"] == rule["createdAt"]
    # Changing nothing appends nothing.
    same = await ok(await client.patch(f"{RULES}/{rule['id']}", json={"bizId": "{{subject}}"}))
    assert same["version"] == 2
    await ok(await client.delete(f"{RULES}/{rule['id']}"))
    await refused(await client.get(f"{RULES}/{rule['id']}"), 404, 40150)
    await refused(await client.delete(f"{RULES}/{rule['id']}"), 404, 40150)
    listed = await ok(await client.get(RULES), paged=True)
    assert listed["data"]["rules"] == []
    recorded = await service.engine.service.store.read_stream(rule_stream(rule["id"]))
    assert [e.type for e in recorded] == ["RuleCreated", "RuleUpdated", "RuleDeleted"]
    assert {e.metadata["actor"] for e in recorded} == {"anonymous"}


async def test_lists_page_by_cursor_and_filter_by_type(service: Service) -> None:
    client = service.client
    made = [await make_rule(client, bizId=f"b-{i}") for i in range(5)]
    other = await make_rule(client, type="other.type")
    seen: list[str] = []
    cursor = ""
    while True:
        params: dict[str, Any] = {"pageSize": 2, "type": "backup.requested"}
        if cursor:
            params["cursor"] = cursor
        body = await ok(await client.get(RULES, params=params), paged=True)
        seen += [r["id"] for r in body["data"]["rules"]]
        cursor = body["data"]["nextCursor"]
        if cursor is None:
            break
    assert seen == [r["id"] for r in reversed(made)]
    assert other["id"] not in seen
    await refused(await client.get(RULES, params={"cursor": "nonsense"}), 400, 40115)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"bizId": "{{secret.x}}"}, "unknown name"),
        ({"context": {"k": "{{data..x}}"}}, "is no path"),
        ({"type": ""}, "type"),
        ({"type": "t" * 257}, "type"),
        ({"source": ""}, "source"),
        ({"source": "s" * 257}, "source"),
        ({"bizId": "b" * 1001}, "bizId"),
        ({"description": "d" * 1001}, "description"),
        ({"extra": 1}, "extra"),
        ({"context": {"traceId": "x"}}, "traceId"),
        ({"bizId": "a\x00b"}, "NUL"),
    ],
)
async def test_bad_rules_are_refused_and_nothing_is_made(
    service: Service, body: dict[str, Any], words: str
) -> None:
    base = {"type": "backup.requested", "flowName": "backup", "bizId": "{{data.id}}"}
    refusal = await refused(await post(service.client, RULES, {**base, **body}), 400, 40115)
    assert words in refusal["message"]
    assert (await ok(await service.client.get(RULES), paged=True))["data"]["rules"] == []


async def test_an_unknown_definition_is_not_found(service: Service) -> None:
    base = {"type": "t", "flowName": "no-such-flow", "bizId": "x"}
    await refused(await post(service.client, RULES, base), 404, 40104)


async def test_a_change_is_checked_as_a_create_and_a_bad_one_changes_nothing(
    service: Service,
) -> None:
    client = service.client
    rule = await make_rule(client)
    path = f"{RULES}/{rule['id']}"
    await refused(await client.patch(path, json={"bizId": "{{nope}}"}), 400, 40115)
    await refused(await client.patch(path, json={"flowName": "no-such-flow"}), 404, 40104)
    await refused(await client.patch(path, json={"type": None}), 400, 40115)
    await refused(await client.patch(path, json={"colour": "red"}), 400, 40115)
    assert await ok(await client.get(path)) == rule


async def test_a_create_sent_again_with_its_key_makes_one_rule(service: Service) -> None:
    client = service.client
    body = {"type": "t", "flowName": "backup", "bizId": "{{id}}"}
    key = {"Idempotency-Key": "rule-1"}
    answers = await asyncio.gather(*(post(client, RULES, body, key) for _ in range(5)))
    rules = [await ok(answer) for answer in answers]
    assert len({r["id"] for r in rules}) == 1
    listed = await ok(await client.get(RULES), paged=True)
    assert len(listed["data"]["rules"]) == 1
    other = await post(client, RULES, {**body, "bizId": "{{source}}"}, key)
    await refused(other, 422, 40125)


async def test_a_tenant_has_at_most_so_many_rules_for_one_type(service: Service) -> None:
    client = service.client
    for i in range(MAX_RULES_PER_TYPE):
        await make_rule(client, bizId=f"b-{i}")
    refusal = await refused(await post(client, RULES, {"type": "backup.requested",
                                                       "flowName": "backup", "bizId": "x"}),
                            400, 40115)  # fmt: skip
    assert "rules for this event type" in refusal["message"]
    await make_rule(client, type="another.type")


async def test_another_tenants_rules_do_not_exist(guarded: Service) -> None:
    client = guarded.client
    mine = await make_rule(client, A)
    path = f"{RULES}/{mine['id']}"
    await refused(await client.get(path, headers=B), 404, 40150)
    await refused(await client.patch(path, json={"bizId": "x"}, headers=B), 404, 40150)
    await refused(await client.delete(path, headers=B), 404, 40150)
    listed = await ok(await client.get(RULES, headers=B), paged=True)
    assert listed["data"]["rules"] == []
    assert (await ok(await client.get(path, headers=A)))["tenantId"] == "tenant-a"
    await refused(await client.get(f"{RULES}/{'x' * 500}", headers=A), 404, 40150)


async def test_a_tenant_cannot_make_a_rule_for_another_tenants_definition(
    guarded: Service,
) -> None:
    client = guarded.client
    await ok(await post(client, DEFINITIONS, {"name": "b-only", **NOOP}, B))
    body = {"type": "t", "flowName": "b-only", "bizId": "x"}
    await refused(await post(client, RULES, body, A), 404, 40104)
    mine = await make_rule(client, A, type="t")
    await refused(await client.patch(f"{RULES}/{mine['id']}", json={"flowName": "b-only"},
                                     headers=A), 404, 40104)  # fmt: skip
    assert (await ok(await post(client, RULES, body, B)))["tenantId"] == "tenant-b"


async def _key(service: Service, role: str) -> dict[str, str]:
    made = await ok(await post(service.client, "/api/v1/keys", {"name": role, "role": role}, A))
    return {"Authorization": f"Bearer {made['key']}"}


async def test_viewers_read_rules_and_only_admins_change_them(guarded: Service) -> None:
    client = guarded.client
    viewer, operator = await _key(guarded, "viewer"), await _key(guarded, "operator")
    rule = await make_rule(client, A)
    path = f"{RULES}/{rule['id']}"
    assert (await ok(await client.get(path, headers=viewer)))["id"] == rule["id"]
    await ok(await client.get(RULES, headers=viewer), paged=True)
    body = {"type": "t", "flowName": "backup", "bizId": "x"}
    for who in (viewer, operator):
        await refused(await post(client, RULES, body, who), 403, 40139)
        await refused(await client.patch(path, json={"bizId": "y"}, headers=who), 403, 40139)
        await refused(await client.delete(path, headers=who), 403, 40139)
    await refused(await client.get(RULES), 401, 40118)
    assert (await ok(await client.get(path, headers=A)))["version"] == 1
