"""The README's read-replica blocks run as written: `flowlog serve` with a real streaming
replica, then the create that answers with its commit position, the read presenting it, and
/readyz."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowlog.bench.harness import free_port
from tests import readme
from tests.replicas.conftest import Database


@pytest.mark.slow
async def test_the_readme_replica_blocks_read_on_a_streaming_replica(
    database: Database, tmp_path: Path
) -> None:
    port = free_port()
    env = readme.environment(tmp_path, DATABASE_URL=database.primary_url, FLOWLOG_PORT=str(port))
    server = readme.runnable("replicas-server", FLOWLOG_READ_DATABASE_URL=database.replica_url)
    async with readme.background(server, env, tmp_path / "serve.log") as base:
        # As a reader would, once /readyz says the replica is in use (checked once a second).
        async with asyncio.timeout(30):
            while True:
                _, ready = await readme.get(base, "/readyz")
                if ready["data"]["replicas"][0]["state"] == "ok":
                    break
                await asyncio.sleep(0.2)
        out = await readme.run_shell(readme.runnable("replicas", API=base), env)
        reads = await _replica_reads(base)
    position, listed, ready = out.splitlines()
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", position), out
    flows = _answer(listed)["data"]["workFlows"]
    assert [(f["bizId"], f["status"]) for f in flows] == [("c9", "Initializing")]
    assert [r["state"] for r in _answer(ready)["data"]["replicas"]] == ["ok"]
    assert reads >= 1  # the list, read on the replica with the create's position


def _answer(line: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(line)
    assert document["code"] == 0, document
    return document


async def _replica_reads(base: str) -> float:
    """Reads answered by a replica, from the server's own /metrics."""
    async with aiohttp.ClientSession(base) as session, session.get("/metrics") as answer:
        text = await answer.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "flowlog_reads_total" and sample.labels["why"] == "replica"
    )
