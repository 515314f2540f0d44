"""The schedule routes: every command through its success path, bad input refused in the
envelope with nothing changed, and tenants kept apart."""

from __future__ import annotations

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
