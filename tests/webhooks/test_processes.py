"""The issue's story with real processes: two ``flowlog worker`` processes deliver a
subscription's events while flows run; the receiver goes down for a few seconds
(WEBHOOK_DOWN_SECONDS, 5 by default) and one worker is killed with SIGKILL meanwhile, holding
lanes; afterwards every event has arrived, in order per flow, at least once, and duplicates
carry the same webhook-id."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from pathlib import Path

import asyncpg
import pytest

from flowlog.engine import Engine
from flowlog.webhooks.signing import message_id
from tests.helpers import eventually, wait_until
from tests.processes import Workers, create_flows, wait_finished
from tests.webhooks.receiver import Receiver
from tests.webhooks.rows import secret, subscribe

DOWN_SECONDS = float(os.environ.get("WEBHOOK_DOWN_SECONDS", "5"))
FLOWS = 40
TYPES = ["FlowCreated", "FlowStarted", "NodeStarted", "NodeSucceeded", "FlowFinished"]
PER_FLOW = 1 + 1 + 3 + 3 + 1
pytestmark = pytest.mark.slow

HOLDS_A_LANE = """
SELECT EXISTS (SELECT 1 FROM webhook_lanes WHERE owner LIKE $1 AND leased_until > now())
"""


async def test_every_event_arrives_in_order_through_an_outage_and_a_kill(
    api: Engine, database_url: str, runs_dir: Path, workers_factory: list[Workers]
) -> None:
    receiver = Receiver()
    await receiver.start()
    pool = api.pool
    try:
        hook = await subscribe(pool, url=receiver.url, events=TYPES)
        workers = Workers(database_url, runs_dir, "20-60")
        workers.env["FLOWLOG_WEBHOOK_ALLOW"] = "127.0.0.1"
        workers_factory.append(workers)
        workers.start(2)
        await create_flows(api, FLOWS)
        await wait_until(lambda: len(receiver.received) >= 30, within=60, what="first deliveries")

        await receiver.stop()  # down: connections refused
        victim = workers.processes[0]
        await eventually(lambda: _holds(pool, victim.pid), within=30, what="a lane held")
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        await asyncio.sleep(DOWN_SECONDS)
        await receiver.start()  # up again, on the same port

        await wait_finished(pool, FLOWS, within=60)
        expected = await _expected(pool)
        # Nodes the killed worker ran were run again (more NodeStarted): at least this many.
        assert len(expected) >= FLOWS * PER_FLOW
        await wait_until(lambda: {r.msg_id for r in receiver.received} >= set(expected),
                         within=90, what="every event")  # fmt: skip
    finally:
        await receiver.stop()

    payloads = receiver.verified(await secret(pool, hook))
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for received, body in zip(receiver.received, payloads, strict=True):
        data = body["data"]
        # A duplicate is the same event under the same webhook-id.
        assert expected[received.msg_id] == (data["flowId"], data["streamVersion"], body["type"])
        if received.msg_id not in seen:
            seen.add(received.msg_id)
            first_seen[data["flowId"]].append(data["streamVersion"])
    assert len(first_seen) == FLOWS
    for flow_id, versions in first_seen.items():
        assert versions == sorted(versions), flow_id  # in order per flow
    assert len(receiver.received) >= len(expected)


async def _holds(pool: asyncpg.Pool, pid: int) -> bool:
    return bool(await pool.fetchval(HOLDS_A_LANE, f"%:{pid}:%"))


async def _expected(pool: asyncpg.Pool) -> dict[str, tuple[str, int, str]]:
    """webhook-id -> (flow, version, type) of every event the subscription wants."""
    hook = await pool.fetchval("SELECT id FROM webhooks")
    rows = await pool.fetch(
        "SELECT position, stream_id, version, type FROM events "
        "WHERE stream_id LIKE 'flow-%' AND type = ANY($1)",
        TYPES,
    )
    return {
        message_id(hook, r["position"]): (r["stream_id"][5:], r["version"], r["type"]) for r in rows
    }
