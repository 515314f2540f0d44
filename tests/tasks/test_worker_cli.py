"""``flowlog worker --remote URL --queue Q``, as a user runs it: a process of its own, beside a
``flowlog serve`` of its own, with no database; it runs the queue's tasks with the executors
of its --definitions and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import orjson
import pytest

from flowlog.bench.harness import serve_process
from flowlog.client import FlowlogClient
from tests.api.conftest import TOKENS
from tests.helpers import cli_env, run_flowlog
from tests.processes import ROOT

DEFINITIONS = "tests.tasks.workerdefs"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--queue", "gpu"], "--queue goes with --remote URL"),
        (["--token", "t"], "--token and --worker-id go with --remote URL"),
        (["--remote", "http://127.0.0.1:9"], "--remote needs --queue"),
        (["--remote", "http://127.0.0.1:9", "--queue", "gpu"], "--remote needs --definitions"),
        (["--remote", "http://127.0.0.1:9", "--queue", "g p u"], "a queue's name is"),
        (["--remote", "http://127.0.0.1:9", "--queue", "cpu", "--definitions", DEFINITIONS],
         "has no executor for queue 'cpu'"),
    ],
)  # fmt: skip
def test_bad_usage_of_a_remote_worker_exits_2_saying_why(args: list[str], said: str) -> None:
    result = run_flowlog("worker", *args, env=cli_env(FLOWLOG_DEFINITIONS=""))
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
async def test_the_cli_worker_runs_a_flow_to_the_end_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    server = serve_process(database_url, "--definitions", DEFINITIONS,
                           env={"FLOWLOG_TOKENS": TOKENS})  # fmt: skip
    async with server as base, FlowlogClient(base, token="token-a") as client:
        created = await client.create("gpu-render", "frame-3", "film", start=True,
                                      context={"frame": 3, "scratch": 1})  # fmt: skip
        flow_id = created.workFlowId
        log_path = tmp_path / "worker.log"
        with log_path.open("wb") as log:
            # No DATABASE_URL: the worker reaches flowlog through its API only.
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowlog.cli", "worker", "--remote", base,
                "--queue", "gpu", "--definitions", DEFINITIONS, "--worker-id", "cli-1",
                "--concurrency", "2", cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=log,
                env=cli_env(FLOWLOG_TOKEN="token-a", FLOWLOG_LOG_FORMAT="json"),
            )  # fmt: skip
            try:
                done = await client.wait(flow_id, {"Finished"}, within=60)
                render = next(n for n in done.nodes if n.name == "render")
                assert render.result == "frame 3 on attempt 1\n"
                assert (await client.state(flow_id)).context["rendered"] == 6
                [gpu] = [q for q in await client.queues() if q.queue == "gpu"]
                assert gpu.workers == ["cli-1"]
                worker.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(worker.wait(), 20) == 0
            finally:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
        lines = [orjson.loads(line) for line in log_path.read_bytes().splitlines()]
        said = [line["message"] for line in lines]
        assert said.index("definitions loaded") < said.index("worker polling")
        assert said[-1] == "worker stopped"
        [completed] = [line for line in lines if line["message"] == "task completed"]
        assert (completed["flow_id"], completed["node_id"]) == (flow_id, render.id)
        assert completed["outcome"] == "success"

        # A token the server does not know: refused, said, exit status 1.
        refused = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowlog.cli", "worker", "--remote", base, "--queue", "gpu",
            "--definitions", DEFINITIONS, "--token", "not-a-token", cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=cli_env(),
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(refused.communicate(), 60)
        assert refused.returncode == 1
        assert b"flowlog worker: refused by" in stderr
        assert b"Traceback" not in stderr
