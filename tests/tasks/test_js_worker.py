"""examples/worker.js, the JavaScript worker of docs/api.md, against a live ``flowlog serve``:
it runs the render tasks its handler knows, a handler that throws sends the flow down its fail
path, it authenticates with its token, it stops a handler the flow no longer wants, it sends a
request whose answer was lost again under the same Idempotency-Key, and SIGTERM lets it finish
what it holds and exit 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from flowlog.bench.harness import served
from tests.tasks.live import COMPLETE, POLL, LossyProxy, Rest, Worker, node, workers

pytestmark = pytest.mark.slow
TOKENS = "alice:token-a:tenant-a,bob:token-b:tenant-b"


@asynccontextmanager
async def live(
    database_url: str, folder: Path, tokens: str = "", token: str = ""
) -> AsyncIterator[tuple[str, Rest, Callable[..., Worker]]]:
    """A ``flowlog serve`` process with render-flow registered (by ``token``'s tenant): its
    URL, its REST API, and a way to start workers."""
    node()  # skips before a server starts for nothing
    async with (
        served(database_url, env={"FLOWLOG_TOKENS": tokens}) as (base, _),
        aiohttp.ClientSession(base) as session,
        workers(folder) as start,
    ):
        rest = Rest(session, token)
        await rest.register()
        yield base, rest, start


async def test_the_worker_renders_and_a_throw_takes_the_fail_path(
    database_url: str, tmp_path: Path
) -> None:
    async with live(database_url, tmp_path) as (base, rest, start):
        frames = {await rest.create({"frame": n}): n for n in (1, 2, 3, 4, 5)}
        broken = await rest.create({"scene": "no frame"})
        worker = start(base, concurrency=2)

        for flow_id, frame in frames.items():
            done = await rest.wait_status(flow_id, {"Finished"})
            assert [n["name"] for n in done["nodes"]] == ["prepare", "render", "finish"]
            assert done["nodes"][1]["result"] == f"rendered frame {frame}"
            assert (await rest.state(flow_id))["context"]["rendered"] == frame
            logged = await worker.wait_event("task completed", flow_id)
            assert logged["nodeId"] == done["nodes"][1]["id"]

        failed = await rest.wait_status(broken, {"Error"})
        message = "the context has no frame to render"
        assert failed["info"]["errorMessage"] == message
        state = await rest.state(broken)
        assert [(n["name"], n["status"]) for n in state["nodes"]] == [
            ("prepare", "Finished"), ("render", "Error"), ("cleanup", "Finished"),
        ]  # fmt: skip
        assert state["nodes"][1]["errorMessage"] == message
        assert "rendered" not in state["context"]
        assert (await worker.wait_event("task failed", broken))["message"] == message

        # Nothing is left: the worker waits in a long poll. SIGTERM hangs it up at once.
        await worker.wait_event("task completed", list(frames)[-1])
        worker.terminate()
        assert await worker.exit_code(within=5) == 0
        assert [e["event"] for e in worker.events()][-2:] == ["stopping", "worker stopped"]
        assert not worker.events("lease lost")
        assert not worker.events("retry")


async def test_sigterm_finishes_the_task_in_hand_and_polls_no_more(
    database_url: str, tmp_path: Path
) -> None:
    async with live(database_url, tmp_path) as (base, rest, start):
        slow = await rest.create({"frame": 7, "renderMs": 2000})
        worker = start(base)
        await worker.wait_event("task started", slow)
        worker.terminate()
        await worker.wait_event("stopping")
        later = await rest.create({"frame": 8})
        await rest.wait_offered(later)

        assert await worker.exit_code() == 0
        done = await rest.wait_status(slow, {"Finished"})
        assert done["nodes"][1]["result"] == "rendered frame 7"
        assert done["nodes"][1]["attempt"] == 1
        events = [e["event"] for e in worker.events()]
        assert events.index("stopping") < events.index("task completed")
        # Offered after the worker stopped polling: nobody took it.
        held = (await rest.detail(later))["task"]
        assert held["queue"] == "js"
        assert held["workerId"] is None
        assert (await rest.detail(later))["info"]["status"] == "Processing"


async def test_the_worker_authenticates_with_its_token(database_url: str, tmp_path: Path) -> None:
    async with live(database_url, tmp_path, TOKENS, "token-a") as (base, rest, start):
        flow_id = await rest.create({"frame": 3})
        await rest.wait_offered(flow_id)

        without = start(base, "--once")
        assert await without.exit_code() == 1
        assert "401" in without.events("worker failed")[0]["error"]
        # Another tenant's token sees no task of tenant A's.
        bob = start(base, "--once", token="token-b")
        assert await bob.exit_code() == 0
        assert not bob.events("task started")
        assert (await rest.detail(flow_id))["info"]["status"] == "Processing"

        alice = start(base, "--once", token="token-a")
        assert await alice.exit_code() == 0
        done = await rest.wait_status(flow_id, {"Finished"})
        assert done["nodes"][1]["result"] == "rendered frame 3"
        assert [e["workFlowId"] for e in alice.events("task completed")] == [flow_id]


async def test_a_canceled_flow_aborts_its_handler_at_the_next_heartbeat(
    database_url: str, tmp_path: Path
) -> None:
    """Heartbeats come every third of the lease (30 s: here a wait of about 10 s)."""
    async with live(database_url, tmp_path) as (base, rest, start):
        endless = await rest.create({"frame": 1, "renderMs": 600_000})
        worker = start(base)
        await worker.wait_event("task started", endless)
        await rest.call("POST", "/api/v1/workflow/cancel", {"workFlowId": endless})

        abandoned = await worker.wait_event("task abandoned", endless, within=30)
        assert "Cancel" in abandoned["reason"]
        await rest.wait_status(endless, {"Canceled"})
        # The handler stopped and nothing was answered for it; the worker goes on.
        next_one = await rest.create({"frame": 2})
        assert (await rest.wait_status(next_one, {"Finished"}))["nodes"][1]["attempt"] == 1
        await worker.wait_event("task completed", next_one)
        assert [e["workFlowId"] for e in worker.events("task completed")] == [next_one]
        assert worker.process.poll() is None
        worker.terminate()
        assert await worker.exit_code() == 0


async def test_a_request_whose_answer_was_lost_is_sent_again_with_its_key(
    database_url: str, tmp_path: Path
) -> None:
    async with live(database_url, tmp_path) as (base, rest, start):
        proxy = LossyProxy(base)
        flow_id = await rest.create({"frame": 5})
        await rest.wait_offered(flow_id)
        # Before the proxy listens, the worker's polls are refused: it tries again.
        worker = start(proxy.url)
        refused = await worker.wait_event("retry")
        assert refused["path"] == POLL
        async with proxy.running():
            done = await rest.wait_status(flow_id, {"Finished"})
            # The poll sent again got the lease its lost answer held: the same attempt, at once
            # (a new key would have left that lease to lapse, 30 s, and run attempt 2).
            assert done["nodes"][1]["attempt"] == 1
            assert done["nodes"][1]["result"] == "rendered frame 5"
            # It stops once its complete was answered, however many sendings that took.
            worker.terminate()
            assert await worker.exit_code() == 0
            assert set(proxy.lost) == {POLL, COMPLETE}
            for path, key in proxy.lost.items():
                again = [s for p, k, s in proxy.sent if p == path and k == key]
                assert again[0] == 503
                assert len(again) >= 2, proxy.sent
            keys = [k for p, k, _ in proxy.sent if p == COMPLETE]
            assert len(set(keys)) == 1
            history = await rest.events(flow_id)
            renders = [e for e in history if e["type"] == "NodeSucceeded"
                       and e["data"]["node_id"] == done["nodes"][1]["id"]]  # fmt: skip
            assert len(renders) == 1
        assert {e["path"] for e in worker.events("retry")} == {POLL, COMPLETE}
        assert len(worker.events("task started")) == 1
