"""The schedule routes: every command through its success path, bad input refused in the
envelope with nothing changed, and tenants kept apart."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.api.conftest import TOKENS, MakeService
from tests.api.helpers import A, B, Client, ok, post, refused, wait_for

SCHEDULES = "/api/v1/workflow-schedules"
NIGHTLY = {
    "scheduleId": "nightly-backup",
    "flowName": "backup",
    "cron": "0 2 * * *",
    "timezone": "Europe/Berlin",
    "bizType": "cluster",
    "bizIdTemplate": "backup-{{fireTimeLocal:%Y-%m-%d}}",
    "context": {"clusterId": "c-1", "night": "{{fireTimeLocal:%A}}"},
    "overlap": "skip",
    "catchUp": "last",
    "jitterSeconds": 60,
    "reason": "backups every night",
}


async def events_of(client: Client, schedule_id: str, headers: Any = None) -> list[str]:
    data = await ok(await client.get(f"{SCHEDULES}/{schedule_id}", headers=headers))
    return [e["type"] for e in data["events"]]


async def test_a_nightly_schedule_is_created_listed_changed_and_deleted(client: Client) -> None:
    info = await ok(await post(client, SCHEDULES, NIGHTLY))
    assert info["scheduleId"] == "nightly-backup"
    assert info["status"] == "Active"
    fires = [datetime.fromisoformat(t) for t in info["nextFireTimes"]]
    assert len(fires) == 5
    # 02:00 in Berlin: 01:00 UTC in winter.
    assert all((f.hour, f.minute) == (1, 0) for f in fires)
    listed = await ok(await client.get(SCHEDULES), paged=True)
    assert [s["scheduleId"] for s in listed["data"]["schedules"]] == ["nightly-backup"]
    assert listed["page"]["total"] == 1

    changed = {k: v for k, v in NIGHTLY.items() if k != "scheduleId"} | {"cron": "30 3 * * 1-5"}
    updated = await ok(await client.put(f"{SCHEDULES}/nightly-backup", json=changed))
    assert updated["spec"]["cron"] == "30 3 * * 1-5"
    paused = await ok(await post(client, f"{SCHEDULES}/nightly-backup/pause", {"reason": "x"}))
    assert (paused["status"], paused["nextFireTimes"]) == ("Paused", [])
    resumed = await ok(await post(client, f"{SCHEDULES}/nightly-backup/resume", {}))
    assert resumed["status"] == "Active"
    detail = await ok(await client.get(f"{SCHEDULES}/nightly-backup"))
    assert len(detail["info"]["nextFireTimes"]) == 10
    assert [e["type"] for e in detail["events"]] == [
        "ScheduleCreated", "ScheduleUpdated", "SchedulePaused", "ScheduleResumed",
    ]  # fmt: skip
    assert detail["events"][0]["reason"] == "backups every night"
    assert detail["events"][2]["reason"] == "x"

    deleted = await ok(await client.delete(f"{SCHEDULES}/nightly-backup", params={"reason": "y"}))
    assert deleted["status"] == "Deleted"
    await refused(await client.get(f"{SCHEDULES}/nightly-backup"), 404, 40130)
    listed = await ok(await client.get(SCHEDULES), paged=True)
    assert listed["data"]["schedules"] == []
    again = await ok(await post(client, SCHEDULES, NIGHTLY))  # the id can be used again
    assert again["version"] == 6


async def test_bad_schedules_are_refused_and_change_nothing(client: Client) -> None:
    await ok(await post(client, SCHEDULES, NIGHTLY))
    before = await events_of(client, "nightly-backup")
    for change, status, code in (
        ({"cron": "61 * * * *"}, 400, 40115),
        ({"timezone": "Mars/Olympus"}, 400, 40115),
        ({"intervalSeconds": 60}, 400, 40115),  # both cron and interval
        ({"bizIdTemplate": "{{unknown}}"}, 400, 40115),
        ({"overlap": "sometimes"}, 400, 40115),
        ({"scheduleId": "has space"}, 400, 40115),
        ({"flowName": "no-such-definition", "scheduleId": "other"}, 404, 40104),
        ({"extra": True}, 400, 40115),
        ({"startAt": "0001-01-01T00:00:00Z"}, 400, 40115),
        ({"endAt": "9999-12-31T23:59:59Z"}, 400, 40115),
        ({}, 409, 40131),  # the id is taken
    ):
        await refused(await post(client, SCHEDULES, NIGHTLY | change), status, code)
    spec = {k: v for k, v in NIGHTLY.items() if k != "scheduleId"}
    await refused(await client.put(f"{SCHEDULES}/nightly-backup", json=spec | {"cron": "x"}),
                  400, 40115)  # fmt: skip
    await refused(await client.put(f"{SCHEDULES}/nope", json=spec), 404, 40130)
    await refused(await post(client, f"{SCHEDULES}/nope/pause", {}), 404, 40130)
    await refused(await client.delete(f"{SCHEDULES}/nope"), 404, 40130)
    assert await events_of(client, "nightly-backup") == before


async def test_a_tenant_sees_and_changes_only_its_schedules(make_service: MakeService) -> None:
    client = (await make_service(tokens=TOKENS)).client
    await ok(await post(client, SCHEDULES, NIGHTLY, A))
    await refused(await client.get(f"{SCHEDULES}/nightly-backup", headers=B), 404, 40130)
    await refused(await post(client, f"{SCHEDULES}/nightly-backup/pause", {}, B), 404, 40130)
    listed = await ok(await client.get(SCHEDULES, headers=B), paged=True)
    assert listed["data"]["schedules"] == []
    # Another tenant cannot take the id either (it exists, whose it is not said).
    await refused(await post(client, SCHEDULES, NIGHTLY, B), 409, 40131)
    assert (await ok(await client.get(f"{SCHEDULES}/nightly-backup", headers=A)))["info"][
        "tenantId"
    ] == "tenant-a"


async def test_an_every_second_schedule_starts_flows_over_rest(client: Client) -> None:
    every = {"scheduleId": "often", "flowName": "backup", "intervalSeconds": 1,
             "overlap": "allow", "context": {"slowSeconds": 0}}  # fmt: skip
    await ok(await post(client, SCHEDULES, every))

    async def fired() -> bool:
        detail = await ok(await client.get(f"{SCHEDULES}/often"))
        return bool(detail["info"]["fires"] >= 2)

    await wait_for(fired)
    detail = await ok(await client.get(f"{SCHEDULES}/often"))
    flow_id = detail["info"]["lastFlowId"]

    async def made() -> bool:  # the fire is recorded first, its flow made right after
        return (await client.get(f"/api/v1/workflow/{flow_id}")).status == 200

    await wait_for(made)
    flow = await ok(await client.get(f"/api/v1/workflow/{flow_id}"))
    assert flow["info"]["bizId"].startswith("often-")
    assert flow["info"]["bizType"] == "schedule"
    metrics = await (await client.get("/metrics")).text()
    fired = next(line for line in metrics.splitlines()
                 if line.startswith("flowlog_schedule_fire_delay_seconds_count"))  # fmt: skip
    assert float(fired.split()[-1]) >= 2


async def test_templates_are_held_to_the_flow_create_limits_at_create_and_update(
    client: Client,
) -> None:
    """Formats take plain directives of a fixed list; the longest a schedule's templates can
    render (every directive at its longest) must be a flow the REST create takes: a bizId of
    200 characters at most, a create body of 1 MiB at most."""
    await ok(await post(client, SCHEDULES, NIGHTLY))
    before = await events_of(client, "nightly-backup")
    spec = {k: v for k, v in NIGHTLY.items() if k != "scheduleId"}
    percent_a = "{{fireTime:%A}}"  # a weekday, 9 characters at the longest (Wednesday)
    for change, words in (
        ({"bizIdTemplate": "b-{{fireTime:%1000Y}}"},
         ["bizIdTemplate", "'%1000Y' is not an allowed directive", "{{fireTime:%1000Y}}"]),
        ({"bizIdTemplate": "b-{{fireTime:%-d}}"}, ["bizIdTemplate", "'%-d'"]),
        ({"bizIdTemplate": "b-{{fireTimeLocal:%_H}}"}, ["bizIdTemplate", "'%_H'"]),
        ({"bizIdTemplate": "b-{{fireTime:%0Y}}"}, ["bizIdTemplate", "'%0Y'"]),
        ({"context": {"night": "{{fireTimeLocal:%Ey}}"}}, ["context: $.night", "'%Ey'"]),
        ({"context": {"night": ["{{fireTimeLocal:%Od}}"]}}, ["context: $.night[0]", "'%Od'"]),
        ({"context": {"night": "{{fireTimeLocal:%c}}"}}, ["context: $.night", "'%c'"]),
        ({"bizIdTemplate": percent_a * 22 + "abc"},
         ["bizIdTemplate: renders bizIds of up to 201 characters", "takes 200 at most"]),
        ({"context": {"k": "{{fireTimeLocal}}" * 31_000}},
         ["context: at its longest", "over the 1,048,576"]),
    ):  # fmt: skip
        other = NIGHTLY | change | {"scheduleId": "other"}
        for response in (
            await post(client, SCHEDULES, other),
            await client.put(f"{SCHEDULES}/nightly-backup", json=spec | change),
        ):
            body = await refused(response, 400, 40115)  # fmt: skip
            for word in words:
                assert word in body["message"], (word, body["message"])
    # The scheduleId is what a schedule's own id renders: 100 characters make this too long.
    long_id = {"scheduleId": "s" * 100, "context": {"k": "{{scheduleId}}" * 11_000}}
    await refused(await post(client, SCHEDULES, NIGHTLY | long_id), 400, 40115)
    await refused(await client.get(f"{SCHEDULES}/other"), 404, 40130)
    assert await events_of(client, "nightly-backup") == before
    # At the limits, taken.
    fits = {"bizIdTemplate": percent_a * 22 + "ab", "context": {"k": "{{fireTimeLocal}}" * 29_000}}
    assert (await ok(await post(client, SCHEDULES, NIGHTLY | fits | {"scheduleId": "other"})))[
        "spec"
    ]["bizIdTemplate"] == fits["bizIdTemplate"]
    await ok(await client.put(f"{SCHEDULES}/nightly-backup", json=spec | fits))


async def test_nul_and_lone_surrogates_in_templates_are_refused(client: Client) -> None:
    await ok(await post(client, SCHEDULES, NIGHTLY))
    before = await events_of(client, "nightly-backup")
    spec = {k: v for k, v in NIGHTLY.items() if k != "scheduleId"}
    for change in (
        {"bizIdTemplate": "b\u0000-{{fireTime}}"},
        {"bizIdTemplate": "b-{{fireTime:%Y\ud800}}"},
        {"bizIdTemplate": "b-{{fireTime:%Y\u0000}}"},
        {"context": {"k": "\udfff{{scheduleId}}"}},
        {"context": {"k\u0000": "v"}},
        {"context": {"k": [{"deep": "{{scheduleId}}\u0000"}]}},
    ):
        headers = {"Content-Type": "application/json"}
        # Spelled as JSON escapes (\ud800): a UTF-8 body cannot carry a lone surrogate.
        created = json.dumps(NIGHTLY | change | {"scheduleId": "other"})
        await refused(await client.post(SCHEDULES, data=created, headers=headers), 400, 40115)
        changed = json.dumps(spec | change)
        url = f"{SCHEDULES}/nightly-backup"
        await refused(await client.put(url, data=changed, headers=headers), 400, 40115)
    await refused(await client.get(f"{SCHEDULES}/other"), 404, 40130)
    assert await events_of(client, "nightly-backup") == before
