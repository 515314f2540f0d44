"""``POST /api/v1/events``: a CloudEvent recorded, the flows of its rules started with it
(and run to their end), the same event twice starting one flow (one after the other and
concurrently), unmatched events kept and listed, tenants apart, templates' refusals recorded,
and bad input refused with nothing recorded."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from flowlog.audit.transfer import Selection, export_log, import_log
from flowlog.eventstore import create_pool
from flowlog.triggers.cloudevent import ReceivedEvent
from flowlog.triggers.events import event_stream, flow_id_for
from flowlog.triggers.ingest import Ingestion
from flowlog.triggers.rebuild import rebuild_triggers, verify_triggers
from flowlog.workflow.caller import Caller
from tests.api.conftest import TOKENS, MakeService, Service
from tests.api.helpers import A, B, Client, ok, post, refused, wait_status
from tests.projections.test_rebuild import run_cli
from tests.triggers.helpers import EVENTS, accepted, cloudevent, make_rule, send


@pytest.fixture
async def guarded(make_service: MakeService) -> Service:
    return await make_service(tokens=TOKENS)


async def _listed(client: Client, headers: Any = None, **params: Any) -> list[dict[str, Any]]:
    body = await ok(await client.get(EVENTS, params=params, headers=headers), paged=True)
    events: list[dict[str, Any]] = body["data"]["events"]
    return events


async def _cloudevent_flows(service: Service) -> int:
    count: int = await service.engine.pool.fetchval(
        "SELECT count(*) FROM workflows WHERE biz_type = 'cloudevent'"
    )
    return count


@pytest.mark.parametrize("binary", [False, True])
async def test_a_matched_event_starts_its_rules_flow_which_runs_to_the_end(
    service: Service, binary: bool
) -> None:
    client = service.client
    rule = await make_rule(client, source="/clusters", context={
        "cluster": "{{data.clusterId}}", "size": "{{data.size}}", "tags": "{{data.tags}}",
        "note": "from {{source}}: {{data.size}} GB", "subject": "{{subject}}",
    })  # fmt: skip
    event = cloudevent(data={"clusterId": "c-1", "size": 42, "tags": ["a", 1]}, subject="s-1")
    answer = await accepted(await send(client, event, binary=binary))
    assert answer == {"id": "e-1", "source": "/clusters", "matched": True,
                      "flows": answer["flows"], "refused": [], "duplicate": False,
                      "completed": []}  # fmt: skip
    (flow_id,) = answer["flows"]
    found = await wait_status(client, flow_id, {"Finished"})
    assert (found["info"]["bizId"], found["info"]["bizType"]) == ("c-1", "cloudevent")
    state = await service.engine.service.get(flow_id)
    assert state.context["cluster"] == "c-1"
    assert state.context["size"] == 42  # a whole placeholder keeps the number
    assert state.context["tags"] == ["a", 1]
    assert state.context["note"] == "from /clusters: 42 GB"
    assert state.context["subject"] == "s-1"
    assert state.context["userId"] == f"rule:{rule['id']}"
    # Recorded: the event, what matched and what it started, in its own stream.
    (recorded,) = await service.engine.service.store.read_stream(
        event_stream("", "/clusters", "e-1")
    )
    assert recorded.type == "CloudEventReceived"
    assert recorded.data["data"] == {"clusterId": "c-1", "size": 42, "tags": ["a", 1]}
    assert (recorded.data["rules"], recorded.data["flows"]) == ([rule["id"]], [flow_id])
    (listed,) = await _listed(client)
    assert (listed["matched"], listed["flows"], listed["rules"]) == (True, [flow_id],
                                                                     [rule["id"]])  # fmt: skip
    assert listed["position"] == recorded.position


async def test_rules_match_by_type_and_source(service: Service) -> None:
    client = service.client
    anywhere = await make_rule(client)
    clusters = await make_rule(client, source="/clusters")
    await make_rule(client, source="/elsewhere")
    await make_rule(client, type="other.type")
    answer = await accepted(await send(client, cloudevent(data={"clusterId": "c"})))
    (recorded,) = await _listed(client)
    assert sorted(recorded["rules"]) == sorted([anywhere["id"], clusters["id"]])
    assert len(set(answer["flows"])) == 2


async def test_the_same_event_twice_starts_one_flow(service: Service) -> None:
    client = service.client
    await make_rule(client)
    event = cloudevent(data={"clusterId": "c-1"})
    first = await accepted(await send(client, event))
    # Sent again (in the other mode, with other data: the source and id say it is the same).
    again = await accepted(await send(client, cloudevent(data={"clusterId": "c-2"}),
                                      binary=True))  # fmt: skip
    assert again == {**first, "duplicate": True}
    assert await _cloudevent_flows(service) == 1
    assert len(await _listed(client)) == 1


async def test_ten_concurrent_copies_start_one_flow(service: Service) -> None:
    client = service.client
    await make_rule(client)
    event = cloudevent("burst", data={"clusterId": "c-1"})
    answers = await asyncio.gather(*(send(client, event, binary=i % 2 == 1) for i in range(10)))
    bodies = [await accepted(answer) for answer in answers]
    assert sum(not body["duplicate"] for body in bodies) == 1
    assert len({tuple(body["flows"]) for body in bodies}) == 1
    assert await _cloudevent_flows(service) == 1
    recorded = await service.engine.service.store.read_stream(event_stream("", "/clusters",
                                                                           "burst"))  # fmt: skip
    assert len(recorded) == 1
    await wait_status(client, bodies[0]["flows"][0], {"Finished"})


async def test_an_unmatched_event_is_recorded_listed_and_counted(service: Service) -> None:
    client = service.client
    await make_rule(client, type="something.else")
    answer = await accepted(await send(client, cloudevent("u-1", data={"x": 1})))
    assert (answer["matched"], answer["flows"], answer["duplicate"]) == (False, [], False)
    await make_rule(client)
    await accepted(await send(client, cloudevent("m-1", data={"clusterId": "c"})))
    assert [e["id"] for e in await _listed(client, matched="false")] == ["u-1"]
    assert [e["id"] for e in await _listed(client, matched="true")] == ["m-1"]
    assert [e["id"] for e in await _listed(client)] == ["m-1", "u-1"]
    assert [e["id"] for e in await _listed(client, type="nothing")] == []
    first = await ok(await client.get(EVENTS, params={"pageSize": 1}), paged=True)
    assert [e["id"] for e in first["data"]["events"]] == ["m-1"]
    after = first["data"]["nextCursor"]
    rest = await _listed(client, pageSize=1, after=after)
    assert [e["id"] for e in rest] == ["u-1"]
    await refused(await client.get(EVENTS, params={"after": "x1"}), 400, 40115)
    await refused(await client.get(EVENTS, params={"after": "9" * 19}), 400, 40115)
    await refused(await client.get(EVENTS, params={"matched": "maybe"}), 400, 40115)
    await accepted(await send(client, cloudevent("u-1", data={"x": 1})))  # a duplicate
    metrics = await (await client.get("/metrics")).text()
    for outcome, count in (("unmatched", 1), ("matched", 1), ("duplicate", 1)):
        assert f'flowlog_cloudevents_total{{outcome="{outcome}"}} {count}.0' in metrics


async def test_a_rule_that_cannot_render_is_recorded_as_refused(service: Service) -> None:
    client = service.client
    missing = await make_rule(client, bizId="{{data.clusterId}}")
    too_long = await make_rule(client, bizId="{{data.name}}")
    with_context = await make_rule(client, bizId="ok", context={"k": "{{data.text}}"})
    good = await make_rule(client, bizId="fine-{{id}}")
    data = {"name": "n" * 201, "text": "x" * 1000}
    answer = await accepted(await send(client, cloudevent(data=data)))
    reasons = {r["rule"]: r["reason"] for r in answer["refused"]}
    assert set(reasons) == {missing["id"], too_long["id"]}
    assert "names nothing" in reasons[missing["id"]]
    assert "bizId" in reasons[too_long["id"]]
    assert len(answer["flows"]) == 2
    assert with_context["id"] not in reasons
    assert good["id"] not in reasons
    (listed,) = await _listed(client)
    assert listed["refused"] == 2
    assert listed["matched"] is True
    metrics = await (await client.get("/metrics")).text()
    assert 'flowlog_cloudevents_total{outcome="refused"} 1.0' in metrics


async def test_a_context_too_large_for_a_create_is_refused_for_that_event(
    service: Service,
) -> None:
    client = service.client
    rule = await make_rule(client, bizId="x", context={"a": "{{data.v}}", "b": "{{data.v}}"})
    # Each copy fits in the event; both together are over what a rendering may make (and a
    # create takes): refused before the second copy is made.
    answer = await accepted(await send(client, cloudevent(data={"v": "v" * 600_000})))
    assert [r["rule"] for r in answer["refused"]] == [rule["id"]]
    assert "placeholders make more than 1,048,576" in answer["refused"][0]["reason"]
    assert answer["flows"] == []


async def test_tenants_events_and_rules_stay_apart(guarded: Service) -> None:
    client = guarded.client
    b_rule = await make_rule(client, B)
    a_answer = await accepted(await send(client, cloudevent(data={"clusterId": "c"}),
                                         headers=A))  # fmt: skip
    assert (a_answer["matched"], a_answer["flows"]) == (False, [])
    # The same source and id from another tenant is another event, not a duplicate.
    b_answer = await accepted(await send(client, cloudevent(data={"clusterId": "c"}),
                                         headers=B))  # fmt: skip
    assert (b_answer["duplicate"], b_answer["matched"]) == (False, True)
    assert [e["rules"] for e in await _listed(client, B)] == [[b_rule["id"]]]
    assert [e["matched"] for e in await _listed(client, A)] == [False]
    (flow_id,) = b_answer["flows"]
    await refused(await client.get(f"/api/v1/workflow/{flow_id}", headers=A), 404, 40111)
    assert (await wait_status(client, flow_id, {"Finished"}, headers=B))["info"]["tenantId"] == (
        "tenant-b"
    )


async def test_only_operators_and_above_send_events(guarded: Service) -> None:
    client = guarded.client
    made = await ok(await post(client, "/api/v1/keys", {"name": "v", "role": "viewer"}, A))
    viewer = {"Authorization": f"Bearer {made['key']}"}
    await refused(await send(client, cloudevent(), headers=viewer), 403, 40139)
    await refused(await send(client, cloudevent()), 401, 40118)
    assert await _listed(client, viewer) == []
    made = await ok(await post(client, "/api/v1/keys", {"name": "o", "role": "operator"}, A))
    operator = {"Authorization": f"Bearer {made['key']}"}
    await accepted(await send(client, cloudevent(), headers=operator))
    assert len(await _listed(client, viewer)) == 1


STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BASE = b'{"specversion":"1.0","id":"1","source":"s","type":"t"'


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Content-Type": "application/json"}, BASE + b"}", 415, 40152),
        ({"Content-Type": "application/cloudevents-batch+json"}, b"[" + BASE + b"}]", 415,
         40152),
        (STRUCTURED, b'{"specversion":"1.0","id":"1","type":"t"}', 400, 40151),
        (STRUCTURED, b'{"specversion":"0.3","id":"1","source":"s","type":"t"}', 400, 40151),
        (STRUCTURED, BASE + b',"id":"2"}', 400, 40115),
        (STRUCTURED, BASE + b',"data":{"a":1,"a":2}}', 400, 40115),
        (STRUCTURED, BASE + b',"data":"a\\u0000b"}', 400, 40151),
        (STRUCTURED, BASE + b',"data":' + b"[" * 70 + b"]" * 70 + b"}", 400, 40151),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t",
          "Content-Type": "text/plain"}, b"hello", 415, 40152),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s",
          "Content-Type": "application/json"}, b"{}", 400, 40151),
    ],
)  # fmt: skip
async def test_bad_events_are_refused_and_nothing_is_recorded(
    service: Service, headers: dict[str, str], body: bytes, status: int, code: int
) -> None:
    client = service.client
    await make_rule(client, type="t", bizId="x")
    await refused(await client.post(EVENTS, data=body, headers=headers), status, code)
    assert await _listed(client) == []
    assert await _cloudevent_flows(service) == 0


async def test_a_body_over_the_limit_is_413(service: Service) -> None:
    body = BASE + b',"data":"' + b"x" * (1024 * 1024) + b'"}'
    answer = await service.client.post(EVENTS, data=io.BytesIO(body), headers=STRUCTURED)
    await refused(answer, 413, 40121)
    assert await _listed(service.client) == []


async def test_rules_and_received_events_rebuild_from_the_log(service: Service) -> None:
    client = service.client
    rule = await make_rule(client)
    await ok(await client.patch(f"/api/v1/event-rules/{rule['id']}", json={"bizId": "{{id}}"}))
    deleted = await make_rule(client, type="gone")
    await ok(await client.delete(f"/api/v1/event-rules/{deleted['id']}"))
    await accepted(await send(client, cloudevent("r-1", data={"clusterId": "c"})))
    await accepted(await send(client, cloudevent("r-2", type="nothing")))
    pool = service.engine.pool
    check = await verify_triggers(pool)
    assert (check.rules, check.events, check.differences) == (2, 2, [])
    before = [await pool.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")
              for t in ("event_rules", "received_events")]  # fmt: skip
    await pool.execute("DELETE FROM event_rules; DELETE FROM received_events")
    assert (await verify_triggers(pool)).differences
    assert await rebuild_triggers(pool) == (2, 2)
    after = [await pool.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")
             for t in ("event_rules", "received_events")]  # fmt: skip
    assert [list(map(dict, rows)) for rows in after] == [list(map(dict, rows)) for rows in before]
    assert (await verify_triggers(pool)).differences == []


async def test_a_recorded_hook_runs_in_the_events_transaction(service: Service) -> None:
    """The call site the callback nodes waiting for an event connect to (complete_waits)."""
    seen: list[tuple[str, ReceivedEvent, int]] = []

    async def hook(tx: Any, tenant: str, event: ReceivedEvent) -> list[str]:
        # Inside the transaction: the event's own record is visible to it, not yet to others.
        count = await tx.connection.fetchval("SELECT count(*) FROM received_events")
        seen.append((tenant, event, count))
        return ["0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b"]

    ingestion = Ingestion(service.engine.service, on_recorded=[hook])
    event = ReceivedEvent(tenant="t-1", id="h-1", source="s", type="t", data={"k": 1})
    answer = await ingestion.receive(event, Caller(actor="test"))
    assert answer.completed == ["0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b"]
    ((tenant, passed, count),) = seen
    assert (tenant, passed.id, count) == ("t-1", "h-1", 1)
    assert passed.position is not None
    again = await ingestion.receive(event, Caller(actor="test"))
    assert again.duplicate
    assert len(seen) == 1  # a duplicate runs no hook

    async def failing(tx: Any, tenant: str, event: ReceivedEvent) -> list[str]:
        raise RuntimeError("the hook failed")

    other = ReceivedEvent(tenant="t-1", id="h-2", source="s", type="t")
    with pytest.raises(RuntimeError):
        await Ingestion(service.engine.service, on_recorded=[failing]).receive(
            other, Caller(actor="test")
        )
    # Nothing of it stays: the event can be sent again.
    rows = await service.engine.pool.fetchval(
        "SELECT count(*) FROM received_events WHERE event_id = 'h-2'"
    )
    assert rows == 0
    assert not (await Ingestion(service.engine.service).receive(other, Caller())).duplicate


async def test_the_cli_verifies_and_repairs_the_tables(service: Service, database_url: str) -> None:
    client = service.client
    rule = await make_rule(client)
    await accepted(await send(client, cloudevent("c-1", data={"clusterId": "c"})))
    pool = service.engine.pool
    await pool.execute("UPDATE received_events SET matched = false, flows = '{}'")
    await pool.execute("UPDATE event_rules SET flow_name = 'other' WHERE id = $1", rule["id"])
    checked = await asyncio.to_thread(run_cli, "verify", database_url)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"event rule {rule['id']}" in checked.stdout
    assert "received event cloudevent-" in checked.stdout
    rebuilt = await asyncio.to_thread(run_cli, "rebuild", database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "1 event rules, 1 received events" in rebuilt.stdout
    checked = await asyncio.to_thread(run_cli, "verify", database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        "1 event rules, 1 received events, 0 event waits and 0 webhooks: no drift" in checked.stdout
    )
    (listed,) = await _listed(client)
    assert listed["matched"] is True
    assert len(listed["flows"]) == 1


async def test_an_import_brings_rules_and_received_events_back(
    service: Service, empty_database_url: str
) -> None:
    client = service.client
    rule = await make_rule(client)
    first = await accepted(await send(client, cloudevent("i-1", data={"clusterId": "c"})))
    await accepted(await send(client, cloudevent("i-2", type="unmatched.type")))
    exported = io.BytesIO()
    await export_log(service.engine.database_url, exported, Selection(), progress=False)
    exported.seek(0)
    await import_log(empty_database_url, exported, progress=False)
    pool = await create_pool(empty_database_url, max_size=2)
    try:
        check = await verify_triggers(pool)
        assert (check.rules, check.events, check.differences) == (1, 2, [])
        rows = await pool.fetch("SELECT event_id, matched, flows FROM received_events "
                                "ORDER BY position")  # fmt: skip
        assert [tuple(r) for r in rows] == [("i-1", True, first["flows"]), ("i-2", False, [])]
        assert await pool.fetchval("SELECT flow_name FROM event_rules") == rule["flowName"]
    finally:
        await pool.close()


async def test_an_event_whose_flow_exists_already_records_nothing(service: Service) -> None:
    """Only a flow made outside the event could have its id: the event is refused whole."""
    client = service.client
    rule = await make_rule(client)
    flow_id = flow_id_for(event_stream("", "/clusters", "taken"), 1, rule["id"])
    await service.engine.service.create("b", "t", "backup", flow_id=flow_id)
    answer = await send(client, cloudevent("taken", data={"clusterId": "c"}))
    await refused(answer, 409, 40117)
    assert await _listed(client) == []
    assert await _cloudevent_flows(service) == 0
