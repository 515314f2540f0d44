"""Reads on a real streaming replica: routing, read-your-writes by commit position, a replica
that stops or falls behind (issue 14)."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from flowlog.client import FlowlogClient
from flowlog.replicas.connect import reading_connection
from flowlog.replicas.position import COOKIE, HEADER, parse_position
from flowlog.replicas.replica import ReplicaState, replica_name
from tests.replicas.conftest import (
    Client,
    Database,
    MakeClient,
    Replicated,
    engine_of,
    reads_by,
    replica_query,
)

pytestmark = pytest.mark.slow

_ids = itertools.count()


async def until(condition: Callable[[], bool]) -> None:
    """Until the router's monitor (it checks once a second) makes ``condition`` true."""
    async with asyncio.timeout(20):
        while not condition():  # noqa: ASYNC110 - the state is polled by design
            await asyncio.sleep(0.1)


async def create(client: Client, *, start: bool = False) -> tuple[str, str]:
    """A new flow: its id and the create's commit position."""
    answer = await client.post(
        "/api/v1/workflow/",
        json={"flowName": "backup", "bizId": f"b{next(_ids)}", "bizType": "t", "start": start},
    )
    assert answer.status == 200, await answer.text()
    return (await answer.json())["data"]["workFlowId"], answer.headers[HEADER]


async def test_reads_go_to_the_replica_and_a_presented_position_is_read_back(
    make_client: MakeClient, database: Database
) -> None:
    client = await make_client(cookies=True)
    replica = replica_name(database.replica_url)
    assert [r.state for r in engine_of(client).reads.replicas] == [ReplicaState.OK]
    flow_id, position = await create(client)
    assert parse_position(position) > 0
    for path in (
        f"/api/v1/workflow/{flow_id}",
        f"/api/v1/workflow/{flow_id}/events",
        f"/api/v1/workflow/{flow_id}/state",
        "/api/v1/workflow/?pageSize=5",
        "/api/v1/workflow-definitions",
        f"/flows/{flow_id}",
        "/",
        "/definitions",
    ):
        answer = await client.get(path, headers={HEADER: position})
        assert answer.status == 200, (path, await answer.text())
    counts = await reads_by(client)
    assert counts.get((replica, "replica"), 0) >= 8
    assert not [key for key in counts if key[0] == "primary"]

    # Replay paused: a flow made now is on the primary only. Read without its position, the
    # replica answers (it does not know the flow); with it, the read waits, then the primary
    # answers. The client session's cookie presents the position as the header does.
    await replica_query(database.replica_url, "SELECT pg_wal_replay_pause()")
    try:
        unseen, position = await create(client)
        assert client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value == (
            position
        )
        by_cookie = await client.get(f"/api/v1/workflow/{unseen}")
        assert by_cookie.status == 200
        client.session.cookie_jar.clear()
        stale = await client.get(f"/api/v1/workflow/{unseen}")
        assert stale.status == 404
        fresh = await client.get(f"/api/v1/workflow/{unseen}", headers={HEADER: position})
        assert fresh.status == 200
        assert (await fresh.json())["data"]["info"]["id"] == unseen
        assert (await reads_by(client)).get(("primary", "waited"), 0) >= 2
    finally:
        await replica_query(database.replica_url, "SELECT pg_wal_replay_resume()")


async def test_each_write_answers_with_its_commit_position(make_client: MakeClient) -> None:
    client = await make_client()
    flow_id, first = await create(client)
    started = await client.post("/api/v1/workflow/start", json={"workFlowId": flow_id})
    assert started.status == 200
    assert parse_position(started.headers[HEADER]) >= parse_position(first) > 0
    assert f'{COOKIE}="{started.headers[HEADER]}"' in started.headers["Set-Cookie"]
    assert "HttpOnly" in started.headers["Set-Cookie"]
    # A refused write changed nothing: it has no position to present.
    ghost = "0b6f7c1e-5d2a-4e8f-9a3b-7c6d5e4f3a2b"  # no flow has it
    refused = await client.post("/api/v1/workflow/start", json={"workFlowId": ghost})
    assert refused.status == 404
    assert HEADER not in refused.headers


async def test_a_position_that_is_not_one_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    answer = await client.get("/api/v1/workflow/", headers={HEADER: "yesterday"})
    assert answer.status == 400
    body = await answer.json()
    assert body["code"] != 0
    assert HEADER in body["message"]


async def test_read_your_writes_under_concurrent_writers(make_client: MakeClient) -> None:
    """1,000 create-then-read pairs from 16 writers at once (the reactor running the flows
    too): every read that presents its create's position finds the flow."""
    client = await make_client()
    missing: list[str] = []

    async def writer(pairs: int) -> None:
        for _ in range(pairs):
            flow_id, position = await create(client, start=True)
            answer = await client.get(f"/api/v1/workflow/{flow_id}", headers={HEADER: position})
            if answer.status != 200:
                missing.append(f"{flow_id}: {answer.status}")

    await asyncio.gather(*(writer(1000 // 16 + (i < 1000 % 16)) for i in range(16)))
    assert missing == []
    counts = await reads_by(client)
    on_replica = sum(n for (server, why), n in counts.items() if why == "replica")
    assert on_replica >= 500, counts  # most are the replica's; some wait it out on the primary


async def test_a_replica_stopped_mid_run_leaves_every_read_answered(
    make_client: MakeClient, replicated: Replicated, database: Database
) -> None:
    doomed = replicated.make_replica()
    try:
        client = await make_client(doomed.dsn(database.name))
        failures: list[str] = []
        done = 0
        a_third = asyncio.Event()

        async def reader() -> None:
            nonlocal done
            while done < 300:
                flow_id, position = await create(client)
                for path in (f"/api/v1/workflow/{flow_id}", "/api/v1/workflow/?pageSize=3"):
                    answer = await client.get(path, headers={HEADER: position})
                    if answer.status != 200:
                        failures.append(f"{path}: {answer.status} {await answer.text()}")
                done += 1
                if done >= 100:
                    a_third.set()

        readers = asyncio.gather(*(reader() for _ in range(6)))
        await a_third.wait()
        await asyncio.to_thread(doomed.stop)
        await readers
        assert failures == []
        ready = await client.get("/readyz")
        assert ready.status == 200
        (status,) = (await ready.json())["data"]["replicas"]
        assert status["state"] == "down"
        counts = await reads_by(client)
        assert counts.get((replica_name(doomed.dsn(database.name)), "replica"), 0) > 0
        assert (
            counts.get(("primary", "replica_failed"), 0) + counts.get(("primary", "no_replica"), 0)
            > 0
        )
    finally:
        doomed.stop()


async def test_a_lagging_replica_is_skipped_reported_and_taken_back(
    make_client: MakeClient, database: Database
) -> None:
    client = await make_client(replica_max_lag=1.0)
    engine = engine_of(client)
    await replica_query(database.replica_url, "SELECT pg_wal_replay_pause()")
    try:
        async with asyncio.timeout(20):
            while engine.reads.replicas[0].state is not ReplicaState.LAGGING:
                await create(client)  # the primary's WAL moves on; the replica's does not
                await asyncio.sleep(0.1)
        ready = await (await client.get("/readyz")).json()
        (status,) = ready["data"]["replicas"]
        assert status["state"] == "lagging"
        assert status["lagSeconds"] > 1.0
        metrics = await (await client.get("/metrics")).text()
        assert f'flowlog_replica_up{{replica="{status["name"]}"}} 0.0' in metrics
        # Skipped: a read without a position is the primary's, and sees the newest flow.
        flow_id, _ = await create(client)
        assert (await client.get(f"/api/v1/workflow/{flow_id}")).status == 200
    finally:
        await replica_query(database.replica_url, "SELECT pg_wal_replay_resume()")
    await until(lambda: engine.reads.replicas[0].state is ReplicaState.OK)


async def test_the_event_stream_tail_reads_the_replica_to_the_flows_end(
    make_client: MakeClient, database: Database
) -> None:
    client = await make_client()
    flow_id, position = await create(client)
    stream = await client.get(
        f"/api/v1/workflow/{flow_id}/events/stream", headers={HEADER: position}
    )
    assert stream.status == 200
    started = await client.post("/api/v1/workflow/start", json={"workFlowId": flow_id})
    assert started.status == 200
    kinds: list[str] = []
    async with asyncio.timeout(20):
        async for line in stream.content:
            if line.startswith(b"event: "):
                kinds.append(line[7:].decode().strip())
    assert kinds[0] == "FlowCreated"
    assert kinds[-1] == "FlowFinished"
    counts = await reads_by(client)
    assert counts.get((replica_name(database.replica_url), "replica"), 0) >= 2


async def test_a_replica_of_another_cluster_is_never_used(
    make_client: MakeClient, server_url: str
) -> None:
    """The machine's PostgreSQL is no standby of the test primary: refused, named foreign."""
    client = await make_client(server_url)
    ready: dict[str, Any] = await (await client.get("/readyz")).json()
    (status,) = ready["data"]["replicas"]
    assert status["state"] == "foreign"
    assert (await client.get("/api/v1/workflow/")).status == 200
    assert (await reads_by(client)).get(("primary", "no_replica"), 0) >= 1


async def test_flowlog_history_reads_a_caught_up_replica_else_the_primary(
    make_client: MakeClient, database: Database
) -> None:
    client = await make_client()
    flow_id, _ = await create(client, start=True)
    on_replica = await reading_connection(database.primary_url, [database.replica_url])
    try:
        assert await on_replica.fetchval("SELECT pg_is_in_recovery()") is True
    finally:
        await on_replica.close()
    await replica_query(database.replica_url, "SELECT pg_wal_replay_pause()")
    try:
        await create(client)  # the primary's WAL moves past what the replica shows
        behind = await reading_connection(database.primary_url, [database.replica_url], wait=0.2)
        try:
            assert await behind.fetchval("SELECT pg_is_in_recovery()") is False
        finally:
            await behind.close()
    finally:
        await replica_query(database.replica_url, "SELECT pg_wal_replay_resume()")
    gone = await reading_connection(database.primary_url, ["postgresql://u@/x?host=/nowhere"])
    try:
        assert await gone.fetchval("SELECT pg_is_in_recovery()") is False
    finally:
        await gone.close()

    env = {
        **os.environ,
        "DATABASE_URL": database.primary_url,
        "FLOWLOG_READ_DATABASE_URL": database.replica_url,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flowlog.cli", "history", flow_id, "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout.splitlines()[0])["type"] == "FlowCreated"


async def test_the_python_client_reads_its_own_writes(
    make_client: MakeClient, database: Database
) -> None:
    """flowlog.client keeps the latest write's position and presents it: with the replica's
    replay paused, its read of the flow it just made waits, then the primary answers."""
    client = await make_client()
    base = str(client.make_url("")).rstrip("/")
    await replica_query(database.replica_url, "SELECT pg_wal_replay_pause()")
    try:
        async with FlowlogClient(base) as flowlog:
            created = await flowlog.create("backup", "ryw", "t")
            assert flowlog.position is not None
            detail = await flowlog.detail(created.workFlowId)
            assert detail.info.id == created.workFlowId
    finally:
        await replica_query(database.replica_url, "SELECT pg_wal_replay_resume()")
    assert (await reads_by(client)).get(("primary", "waited"), 0) >= 1
