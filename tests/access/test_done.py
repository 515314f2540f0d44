"""Issue 25's "done when", as a person would do it with two `flowlog serve` processes on one
fresh database: the first admin key from `flowlog keys create`, a viewer key over REST, the
viewer reads and is refused a stop (403, the role named), the key is revoked on one server and
refused by the other within a second."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from flowlog.bench.harness import free_port
from tests import readme

FLOWS = "/api/v1/workflow/"


async def call(base: str, method: str, path: str, key: str, body: Any = None
               ) -> tuple[int, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession(base) as session,
        session.request(method, path, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


async def test_a_fresh_installation_from_its_first_key_to_a_revocation(
    database_url: str, tmp_path: Path
) -> None:
    env = readme.environment(tmp_path, DATABASE_URL=database_url)
    first = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "flowlog.cli", "keys", "create", "--name", "root",
         "--tenant", "acme", "--role", "admin"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    root = first.stdout.strip()
    assert root.startswith("flk_")
    assert "shown once" in first.stderr
    async with contextlib.AsyncExitStack() as servers:
        bases = []
        for n in (1, 2):
            served = {**env, "FLOWLOG_PORT": str(free_port())}
            bases.append(await servers.enter_async_context(
                readme.background("exec flowlog serve", served, tmp_path / f"serve{n}.log")
            ))  # fmt: skip
        one, two = bases
        status, made = await call(one, "POST", "/api/v1/keys", root,
                                  {"name": "reader", "role": "viewer"})  # fmt: skip
        assert status == 200, made
        viewer, key_id = made["data"]["key"], made["data"]["id"]
        status, listed = await call(two, "GET", FLOWS, viewer)
        assert status == 200, listed
        status, _ = await call(one, "POST", "/api/v1/workflow-definitions", root,
                               {"name": "hello", "nodes": {"start": {"name": "start",
                                "executor": {"type": "noop"}}}})  # fmt: skip
        assert status == 200
        new_flow = {"flowName": "hello", "bizId": "c1", "bizType": "demo", "start": False}
        status, created = await call(one, "POST", FLOWS, root, new_flow)
        assert status == 200, created
        flow_id = created["data"]["workFlowId"]
        status, refused = await call(two, "POST", FLOWS + "stop", viewer, {"workFlowId": flow_id})
        assert status == 403
        assert refused["code"] == 40139
        assert "operator" in refused["message"]
        status, revoked = await call(one, "POST", f"/api/v1/keys/{key_id}/revoke", root,
                                     {"reason": "done with it"})  # fmt: skip
        assert status == 200, revoked
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while (await call(two, "GET", FLOWS, viewer))[0] != 401:
            assert loop.time() < deadline, "the other server still takes the revoked key"
            await asyncio.sleep(0.02)
