"""Moving running flows to another version (issue 26): a flow of version 1 waits, a process
that has only version 2 (a node renamed, one added) cannot run it; a migration moves it, and
it finishes under version 2. Dry runs, blocked flows, migrating back, one migration at a time,
idempotency, tenants and bad input, over REST."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flowlog.audit.migrate_flows import migrate_flows
from flowlog.audit.migration import judge, map_problems, shape_of
from flowlog.config import Settings
from flowlog.engine import Engine
from flowlog.eventstore import EventStore
from flowlog.projections.verify import verify
from flowlog.roles import DatabaseUrls
from flowlog.web import create_app
from flowlog.wire.migrations import MigrationRequest
from flowlog.workflow.caller import SYSTEM
from flowlog.workflow.commands import Advance, RecordFailure, RecordSuccess, StartFlow
from flowlog.workflow.definition import NodeDefinition, Registry, WorkflowDefinition
from flowlog.workflow.errors import Code, NodeError
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.projection import PROJECTOR
from flowlog.workflow.state import FlowStatus
from flowlog.workflow.streams import flow_stream
from tests.api.conftest import TOKENS, Gate
from tests.api.helpers import DEFINITIONS, A, B, ok, post, refused, wait_status
from tests.audit.checks import check_audit_of_every_flow
from tests.engines import StartEngine
from tests.helpers import QUIET, cli_env, run_flowlog
from tests.workflow.defs import noop
from tests.workflow.harness import created

Client = TestClient[web.Request, web.Application]


async def refuse(node: NodeHandle, ctx: FlowContext) -> None:
    raise NodeError("not yet", code=7100)


V1 = WorkflowDefinition(
    "orders",
    {
        "start": NodeDefinition("prepare", noop, success="review"),
        "review": NodeDefinition("review", refuse, success="done", fail="pause"),
        "done": NodeDefinition("done", noop),
    },
)
V2 = WorkflowDefinition(
    "orders",
    {
        "start": NodeDefinition("prepare", noop, success="check"),
        "check": NodeDefinition("check", noop, success="notify", fail="pause"),
        "notify": NodeDefinition("notify", noop, success="done"),
        "done": NodeDefinition("done", noop),
    },
)
"""Version 2: ``review`` renamed ``check`` (and it passes now), ``notify`` added."""
MIGRATIONS = f"{DEFINITIONS}/orders/migrations"


async def paused_flows(database_url: str, *tenants: str) -> list[str]:
    """Flows of version 1 that ran to ``review`` and paused there (stopped), one per tenant;
    the process that ran them (the only one with version 1) is gone afterwards."""
    flow_ids = []
    async with Engine(database_url, Registry([V1])) as engine:
        for tenant in tenants:
            state = await engine.service.create("o-1", "order", "orders", tenant_id=tenant,
                                                start=True)  # fmt: skip
            flow_ids.append(state.flow_id)
        for flow_id in flow_ids:
            await _until_stopped(engine, flow_id)
    return flow_ids


async def _until_stopped(engine: Engine, flow_id: str) -> None:
    for _ in range(500):
        state = await engine.service.get(flow_id)
        if state.status is FlowStatus.STOPPED:
            return
        await engine_sleep()
    raise AssertionError(f"{flow_id} did not pause")


async def engine_sleep() -> None:
    await asyncio.sleep(0.02)


@pytest.fixture
async def v2_client(database_url: str, runtime_url: str) -> AsyncIterator[Client]:
    """A service (reactor included) that has only version 2, with two tenants' tokens and an
    admin token of each (the route is for admins)."""
    settings = Settings.from_env({}).model_copy(
        update={"tokens": TOKENS, "lease_seconds": 2.0, "pool_size": 5}
    )
    app = create_app(settings, DatabaseUrls(runtime_url, database_url), Registry([V2]))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


def body(dry_run: bool, node_map: dict[str, str] | None = None, **more: Any) -> dict[str, Any]:
    sent: dict[str, Any] = {"from": V1.version, "to": V2.version, "dryRun": dry_run, **more}
    if node_map is not None:
        sent["nodeMap"] = node_map
    return sent


async def migrate(client: Client, sent: dict[str, Any], headers: Any = A) -> dict[str, Any]:
    data: dict[str, Any] = await ok(await post(client, MIGRATIONS, sent, headers))
    return data


def outcomes(answer: dict[str, Any]) -> dict[str, str]:
    return {line["workFlowId"]: line["outcome"] for line in answer["flows"]}


async def test_a_stranded_flow_moves_to_version_2_and_finishes_there(
    database_url: str, v2_client: Client, pool: asyncpg.Pool
) -> None:
    (flow_id,) = await paused_flows(database_url, "tenant-a")
    client = v2_client
    # Started again, it waits for a process with version 1: its work row names version 1,
    # which this process's reactor does not claim.
    await ok(await post(client, "/api/v1/workflow/start", {"workFlowId": flow_id}, A))
    work = await pool.fetchval("SELECT definition_version FROM flow_work WHERE flow_id = $1",
                               flow_id)  # fmt: skip
    assert work == V1.version

    # Without a node map it is blocked: its node review is not in version 2.
    blocked = await migrate(client, body(True))
    assert outcomes(blocked) == {flow_id: "blocked"}
    assert "'review'" in blocked["flows"][0]["reason"]
    assert "nodeMap" in blocked["flows"][0]["reason"]
    # With it, it moves cleanly; a dry run changes nothing.
    dry = await migrate(client, body(True, {"review": "check"}))
    assert outcomes(dry) == {flow_id: "clean"}
    assert (dry["clean"], dry["blocked"], dry["already"]) == (1, 0, 0)
    versions = await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1",
                                   flow_stream(flow_id))  # fmt: skip
    assert dry["flows"][0]["version"] == versions

    done = await migrate(client, body(False, {"review": "check"}))
    assert outcomes(done) == {flow_id: "migrated"}
    final = await wait_status(client, flow_id, {"Finished"}, headers=A)
    assert final["info"]["definitionVersion"] == V2.version
    ran = [(n["name"], n["status"]) for n in final["nodes"]]
    assert ran[-3:] == [("check", "Finished"), ("notify", "Finished"), ("done", "Finished")]
    history = await ok(
        await client.get(f"/api/v1/workflow/{flow_id}/events", headers=A), paged=True
    )
    summaries = [e["summary"] for e in history["data"]["events"]]
    assert f"migrated from version {V1.version} to {V2.version} (node review → check)" in (
        summaries
    )
    # SQL's flow_state() is the fold at every version; the tables are the fold.
    assert await check_audit_of_every_flow(database_url) == 1
    report = await verify(EventStore(pool), PROJECTOR, progress=False)
    assert report.ok, report


async def test_migrating_back_is_another_migration(
    database_url: str, v2_client: Client, pool: asyncpg.Pool
) -> None:
    (flow_id,) = await paused_flows(database_url, "tenant-a")
    client = v2_client
    there = await migrate(client, body(False, {"review": "check"}))
    assert outcomes(there) == {flow_id: "migrated"}
    # Back to version 1, which this process does not have: it replays against the shape
    # recorded in the log.
    back = {"from": V2.version, "to": V1.version, "nodeMap": {"check": "review"}, "dryRun": False}
    answer = await migrate(client, back)
    assert outcomes(answer) == {flow_id: "migrated"}
    row = await pool.fetchrow("SELECT definition_version FROM workflows WHERE id = $1", flow_id)
    assert row["definition_version"] == V1.version
    keys = await pool.fetch("SELECT node_key FROM workflow_nodes WHERE flow_id = $1 ORDER BY "
                            "sequence", flow_id)  # fmt: skip
    assert [k["node_key"] for k in keys] == ["start", "review"]
    # And there again, where it finishes.
    again = await migrate(client, body(False, {"review": "check"}))
    assert outcomes(again) == {flow_id: "migrated"}
    await ok(await post(client, "/api/v1/workflow/start", {"workFlowId": flow_id}, A))
    await wait_status(client, flow_id, {"Finished"}, headers=A)
    assert await check_audit_of_every_flow(database_url) == 1
    assert (await verify(EventStore(pool), PROJECTOR, progress=False)).ok


async def test_one_migration_at_a_time_per_definition(
    database_url: str, v2_client: Client, pool: asyncpg.Pool
) -> None:
    (flow_id,) = await paused_flows(database_url, "tenant-a")
    async with pool.acquire() as other, other.transaction():
        # Another migration of orders holds the definition's lock.
        await other.fetchval(
            "SELECT pg_advisory_xact_lock(hashtext('flowlog-migration'), hashtext('orders'))"
        )
        answer = await post(v2_client, MIGRATIONS, body(False, {"review": "check"}), A)
        refusal = await refused(answer, 409, Code.MIGRATION_RUNNING)
        assert "running" in refusal["message"]
        # A dry run takes no lock.
        assert outcomes(await migrate(v2_client, body(True, {"review": "check"}))) == {
            flow_id: "clean"
        }
    assert outcomes(await migrate(v2_client, body(False, {"review": "check"}))) == {
        flow_id: "migrated"
    }


async def test_a_migration_sent_again_changes_nothing_more(
    database_url: str, v2_client: Client
) -> None:
    (flow_id,) = await paused_flows(database_url, "tenant-a")
    keyed = {**A, "Idempotency-Key": "move-orders-1"}
    first = await migrate(v2_client, body(False, {"review": "check"}), keyed)
    assert outcomes(first) == {flow_id: "migrated"}
    assert await migrate(v2_client, body(False, {"review": "check"}), keyed) == first
    # The same key for another request is refused; without a key, the flow is reported on
    # version 2 already.
    other = await post(v2_client, MIGRATIONS, body(False, {"review": "check"}, limit=5), keyed)
    await refused(other, 422, Code.IDEMPOTENCY_REUSED)
    again = await migrate(v2_client, body(False, {"review": "check"}))
    assert outcomes(again) == {flow_id: "already"}
    assert again["already"] == 1


async def test_a_tenant_migrates_only_its_own_flows(database_url: str, v2_client: Client) -> None:
    mine, theirs = await paused_flows(database_url, "tenant-a", "tenant-b")
    # B names A's flow: it is not B's to see, so it is not selected.
    named = body(False, {"review": "check"}, where={"flowIds": [mine, theirs]})
    answer = await migrate(v2_client, named, B)
    assert outcomes(answer) == {theirs: "migrated"}
    assert outcomes(await migrate(v2_client, body(True, {"review": "check"}))) == {mine: "clean"}
    # A definition a tenant registered over REST is not another tenant's to migrate: 404.
    spec = {"name": "private", "nodes": {"start": {"name": "s", "executor": {"type": "noop"}}}}
    registered = await ok(await post(v2_client, DEFINITIONS, spec, A))
    path = f"{DEFINITIONS}/private/migrations"
    sent = {"from": registered["version"], "to": V2.version, "dryRun": True}
    await refused(await post(v2_client, path, sent, B), 404, Code.DEFINE_NOT_FOUND)


async def test_bad_migrations_are_refused(database_url: str, v2_client: Client) -> None:
    await paused_flows(database_url, "tenant-a")
    client = v2_client
    unknown = {"from": V1.version, "to": "0123456789abcdef", "dryRun": True}
    await refused(await post(client, MIGRATIONS, unknown, A), 404, Code.DEFINE_NOT_FOUND)
    no_name = f"{DEFINITIONS}/nothing/migrations"
    await refused(await post(client, no_name, body(True), A), 404, Code.DEFINE_NOT_FOUND)
    for node_map, said in (
        ({"reveiw": "check"}, "'reveiw' is not a node key of the version migrated from"),
        ({"review": "chekc"}, "'chekc' is not a node key of the version migrated to"),
        ({"review": "check", "start": "check"}, "both mapped to 'check'"),
    ):
        refusal = await refused(
            await post(client, MIGRATIONS, body(True, node_map), A), 400, Code.BAD_INPUT
        )
        assert said in refusal["message"]
    for bad in (
        {"from": V1.version, "to": V1.version, "dryRun": True},
        {"from": V1.version + "\x00", "to": V2.version, "dryRun": True},
        {"from": V1.version, "to": V2.version, "nodeMap": {"review\x00": "check"}},
        {"from": V1.version, "to": V2.version, "nodeMap": {"x" * 201: "check"}},
        {"from": V1.version, "to": V2.version, "where": {"flowIds": ["not-a-flow"]}},
        {"from": V1.version, "to": V2.version, "surprise": 1},
        {"from": V1.version, "to": V2.version, "limit": 10**6},
    ):
        await refused(await post(client, MIGRATIONS, bad, A), 400, Code.BAD_INPUT)
    huge = {"from": V1.version, "to": V2.version, "nodeMap": {f"k{i}": "v" * 190
                                                             for i in range(6000)}}  # fmt: skip
    answer = await client.post(MIGRATIONS, data=io.BytesIO(orjson.dumps(huge)),
                               headers={**A, "Content-Type": "application/json"})  # fmt: skip
    await refused(answer, 413, Code.TOO_LARGE)
    many = {"from": V1.version, "to": V2.version, "nodeMap": {f"k{i}": "v" for i in range(1001)}}
    await refused(await post(client, MIGRATIONS, many, A), 400, Code.BAD_INPUT)
    # A viewer's or operator's token may not migrate (the route is for admins) is checked by
    # tests/api/test_route_roles.py for every route.


def test_the_decision_is_pure_and_says_why() -> None:
    memory = created(V1)
    memory.run(StartFlow())
    memory.run(Advance())
    memory.run(RecordSuccess(memory.flow.nodes[-1].node_id))
    memory.run(RecordFailure(memory.flow.nodes[-1].node_id, 7100, "not yet"))
    history = memory.history
    clean = judge(history, V2, V2.version, V1.version, {"review": "check"})
    assert clean.outcome == "clean"
    assert clean.event is not None
    assert clean.event.node_map == {"review": "check"}
    wrong_from = judge(history, V2, V2.version, "ffffffffffffffff", {"review": "check"})
    assert wrong_from.outcome == "blocked"
    assert "not ffffffffffffffff" in wrong_from.reason
    # A target where check is a timer: the recorded start is not what it would decide.
    timer = WorkflowDefinition("orders", {
        "start": NodeDefinition("prepare", noop, success="check"),
        "check": NodeDefinition("check", noop, kind="timer", fail="pause"),
    })  # fmt: skip
    diverged = judge(history, timer, timer.version, V1.version, {"review": "check"})
    assert diverged.outcome == "blocked"
    assert "replays otherwise" in diverged.reason
    assert map_problems({"a": "b"}, ["a"], ["b"]) == []
    # A definition in code rebuilt from its recorded description decides as the original.
    shape = shape_of("orders", V1.describe())
    assert judge(history, shape, V1.version, "x", {}).outcome == "already"
    assert set(shape.nodes) == set(V1.nodes)


async def test_flowlog_flows_migrate_on_the_database(database_url: str) -> None:
    """On the database, with no definition loaded: both versions are the log's (version 2 is
    recorded by a process that had it, and rebuilt from its description to replay against)."""
    (flow_id,) = await paused_flows(database_url, "tenant-a")
    async with Engine(database_url, Registry([V2]), run_reactor=False):
        pass  # records version 2
    env = cli_env(DATABASE_URL=database_url, **QUIET)
    base = ["flows", "migrate", "--definition", "orders", "--from", V1.version, "--to", V2.version]
    blocked = run_flowlog(*base, "--dry-run", env=env)
    assert blocked.returncode == 1, blocked.stderr
    assert f"{flow_id}  blocked: its next node 'review' does not exist" in blocked.stdout
    assert "0 would move, 1 blocked, 0 already" in blocked.stdout
    dry = run_flowlog(*base, "--node-map", "review=check", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert orjson.loads(dry.stdout)["flows"][0]["outcome"] == "clean"
    done = run_flowlog(*base, "--node-map", "review=check", "--where-biz-type", "order", env=env)
    assert done.returncode == 0, done.stderr
    assert f"{flow_id}  migrated" in done.stdout
    assert f"orders {V1.version} → {V2.version} (node review → check): 1 moved" in done.stdout
    shown = run_flowlog("flows", "show", flow_id, env=env)
    assert f"definition version {V2.version}" in shown.stdout
    # Bad usage is 2, an unknown version 3.
    assert run_flowlog(*base, "--node-map", "review", env=env).returncode == 2
    assert run_flowlog("flows", "migrate", "--definition", "orders", env=env).returncode == 2
    assert run_flowlog("flows", "list", "--dry-run", env=env).returncode == 2
    unknown = run_flowlog("flows", "migrate", "--definition", "orders", "--from", V1.version,
                          "--to", "0123456789abcdef", env=env)  # fmt: skip
    assert unknown.returncode == 3, unknown.stderr
    assert "does not exist" in unknown.stderr
    wrong_map = run_flowlog(*base, "--node-map", "review=nowhere", env=env)
    assert wrong_map.returncode == 2, wrong_map.stderr


async def test_the_console_shows_the_move_and_travels_through_it(
    database_url: str, runtime_url: str
) -> None:
    (flow_id,) = await paused_flows(database_url, "")
    settings = Settings.from_env({}).model_copy(update={"pool_size": 5})
    app = create_app(settings, DatabaseUrls(runtime_url, database_url), Registry([V2]))
    async with TestClient(TestServer(app)) as client:
        sent = {**body(False, {"review": "check"}), "where": {"flowIds": [flow_id]}}
        assert outcomes(await migrate(client, sent, {})) == {flow_id: "migrated"}
        page = await client.get(f"/flows/{flow_id}")
        assert page.status == 200
        html = await page.text()
        # The version it is on now, and the move in its history, like any event.
        assert f'<span class="mono muted">{V2.version}</span>' in html
        assert f"migrated from version {V1.version} to {V2.version} (node review → check)" in html
        assert ">notify<" in html  # version 2's graph
        # Travelling to before the move draws version 1's graph (review, not check).
        events = await ok(await client.get(f"/api/v1/workflow/{flow_id}/events"), paged=True)
        before = events["page"]["total"] - 1
        earlier = await (await client.get(f"/flows/{flow_id}?version={before}")).text()
        assert ">notify<" not in earlier


async def test_a_flow_migrated_while_its_node_runs_goes_on_under_the_new_version(
    start_engine: StartEngine,
) -> None:
    """A drive that holds the flow when it moves lets it go (its outcome's append finds the
    flow moved); a reactor with the new version takes it on, and the node runs again there."""
    gate = Gate()
    old = WorkflowDefinition("moving", {
        "start": NodeDefinition("prepare", noop, success="hold"),
        "hold": NodeDefinition("hold", gate, success="done"),
        "done": NodeDefinition("done", noop),
    })  # fmt: skip
    new = WorkflowDefinition("moving", {
        "start": NodeDefinition("prepare", noop, success="held"),
        "held": NodeDefinition("held", noop, success="done"),
        "done": NodeDefinition("done", noop),
    })  # fmt: skip
    engine = await start_engine(new, old)  # old is the latest: flows are created on it
    state = await engine.service.create("m-1", "order", "moving", start=True)
    await asyncio.wait_for(gate.entered.wait(), 10)
    request = MigrationRequest.model_validate(
        {"from": old.version, "to": new.version, "nodeMap": {"hold": "held"}}
    )
    answer = await migrate_flows(engine.service, "moving", request, SYSTEM, None)
    assert [line.outcome for line in answer.flows] == ["migrated"]
    gate.opened.set()
    for _ in range(500):
        final = await engine.service.get(state.flow_id)
        if final.terminal:
            break
        await asyncio.sleep(0.02)
    assert final.status is FlowStatus.FINISHED
    assert final.definition_version == new.version
    assert [n.key for n in final.nodes][-2:] == ["held", "done"]
