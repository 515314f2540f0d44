"""What the tests of examples/worker.js share: the worker as a process of its own (Node), the
live server's REST API as a client calls it, and a proxy that loses answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from flowlog.bench.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "examples" / "worker.js"
QUEUE = "js"
POLL = "/api/v1/tasks/poll"
COMPLETE = "/api/v1/tasks/complete"
DEFINITIONS = "/api/v1/workflow-definitions"
FLOWS = "/api/v1/workflow/"
RENDER_FLOW = {
    "name": "render-flow",
    "nodes": {
        "start": {"name": "prepare", "executor": {"type": "noop"}, "success": "render"},
        "render": {"name": "render", "queue": QUEUE, "success": "finish", "fail": "cleanup"},
        "finish": {"name": "finish", "executor": {"type": "noop"}},
        "cleanup": {"name": "cleanup", "executor": {"type": "noop"}},
    },
}
"""prepare -> render (a task on the queue "js", examples/worker.js's render handler) ->
finish; a failed render goes to cleanup."""


def node() -> str:
    """Node's path; skips the test without it (fails it where FLOWLOG_REQUIRE_NODE is set:
    .ci/run installs Node, so there a missing one is a broken run, not a skip)."""
    found = shutil.which("node")
    if found is None:
        missing = "node is not installed (apt-get install -y nodejs): examples/worker.js needs it"
        if os.environ.get("FLOWLOG_REQUIRE_NODE"):
            pytest.fail(missing)
        pytest.skip(missing)
    return found


class Worker:
    """``node examples/worker.js`` on the queue "js", its JSON lines in a file (a file, not a
    pipe: the worker must never block on a full pipe nobody reads)."""

    def __init__(
        self, folder: Path, url: str, *args: str, token: str = "", concurrency: int = 2
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOG_")}
        env.update(
            FLOWLOG_URL=url,
            FLOWLOG_QUEUE=QUEUE,
            FLOWLOG_WORKER_ID="js-test",
            FLOWLOG_CONCURRENCY=str(concurrency),
        )
        if token:
            env["FLOWLOG_TOKEN"] = token
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "worker.jsonl"
        with self.log.open("wb") as out, (folder / "worker.stderr").open("wb") as err:
            self.process = subprocess.Popen(
                [node(), str(WORKER), *args], cwd=ROOT, env=env, stdout=out, stderr=err
            )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The lines logged so far (those of event ``name``); each must be a JSON object."""
        lines = self.log.read_bytes().splitlines()
        logged = [orjson.loads(line) for line in lines if line.strip()]
        for event in logged:
            assert isinstance(event, dict)
            assert {"time", "event"} <= event.keys(), event
        return [e for e in logged if name is None or e["event"] == name]

    async def wait_event(
        self, name: str, flow_id: str | None = None, within: float = 20
    ) -> dict[str, Any]:
        """The first event ``name`` (of flow ``flow_id``), waiting up to ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            exited = self.process.poll()  # before reading: its last lines are in the file
            for event in self.events(name):
                if flow_id is None or event.get("workFlowId") == flow_id:
                    return event
            assert exited is None, f"the worker exited ({exited}) first: {self.events()}"
            assert loop.time() < deadline, f"no {name} event: {self.events()}"
            await asyncio.sleep(0.05)

    async def exit_code(self, within: float = 20) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (code := self.process.poll()) is None:
            assert loop.time() < deadline, f"the worker still runs: {self.events()}"
            await asyncio.sleep(0.05)
        return code

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@contextlib.asynccontextmanager
async def workers(folder: Path) -> AsyncIterator[Callable[..., Worker]]:
    """Starts workers (``start(url, *args, ...)``, each in a folder of its own); kills those
    still running at the end, whatever the test did."""
    started: list[Worker] = []

    def start(url: str, *args: str, **options: Any) -> Worker:
        worker = Worker(folder / f"worker-{len(started)}", url, *args, **options)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


class Rest:
    """The live server's REST API, as any client calls it."""

    def __init__(self, session: aiohttp.ClientSession, token: str = "") -> None:
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, path, json=body, headers=self.headers) as answer:
            envelope = await answer.json()
            assert answer.status == 200, envelope
            assert envelope["code"] == 0, envelope
            return envelope["data"]

    async def register(self) -> None:
        await self.call("POST", DEFINITIONS, RENDER_FLOW)

    async def create(self, context: Mapping[str, Any]) -> str:
        body = {"flowName": "render-flow", "bizId": "frames", "bizType": "render",
                "start": True, "context": dict(context)}  # fmt: skip
        flow_id: str = (await self.call("POST", FLOWS, body))["workFlowId"]
        return flow_id

    async def detail(self, flow_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.call("GET", FLOWS + flow_id)
        return found

    async def state(self, flow_id: str) -> dict[str, Any]:
        """The flow folded from its log: its context, every node execution."""
        found: dict[str, Any] = await self.call("GET", f"{FLOWS}{flow_id}/state")
        return found

    async def events(self, flow_id: str) -> list[dict[str, Any]]:
        path = f"{FLOWS}{flow_id}/events?pageSize=500"
        found: list[dict[str, Any]] = (await self.call("GET", path))["events"]
        return found

    async def wait_status(
        self, flow_id: str, statuses: Collection[str], within: float = 20
    ) -> dict[str, Any]:
        """The flow's detail once its status is one of ``statuses``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            found = await self.detail(flow_id)
            if found["info"]["status"] in statuses:
                return found
            assert loop.time() < deadline, f"{flow_id} stayed {found['info']['status']}"
            await asyncio.sleep(0.05)

    async def wait_offered(self, flow_id: str, within: float = 20) -> None:
        """Until the flow's render task is offered on the queue (prepare ran)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not (await self.detail(flow_id)).get("task"):
            assert loop.time() < deadline, f"{flow_id}: no task offered"
            await asyncio.sleep(0.05)


class LossyProxy:
    """Between the worker and the server: forwards every request, but answers 503 in place of
    the server's answer to the first poll that leased tasks and to the first complete, as when
    an answer is lost on the way back: the server did it, the worker cannot know."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sent: list[tuple[str, str | None, int]] = []
        """Each request's path, Idempotency-Key and the status the worker got."""
        self.lost: dict[str, str | None] = {}
        """The path and key of each request whose answer was lost."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        # A worker that hangs up hangs up the server too (a long poll ends, as without a proxy).
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        async with aiohttp.ClientSession(self.upstream) as self._session:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            try:
                yield
            finally:
                await runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        passed = {k: v for k, v in request.headers.items()
                  if k.lower() in {"content-type", "authorization", "idempotency-key"}}  # fmt: skip
        async with self._session.request(
            request.method, request.path_qs, data=await request.read(), headers=passed
        ) as answer:
            status, payload = answer.status, await answer.read()
        key = request.headers.get("Idempotency-Key")
        if status == 200 and request.path not in self.lost and self._worth_losing(request, payload):
            self.lost[request.path] = key
            status = 503
            payload = orjson.dumps({"code": 50300, "message": "lost on the way", "data": {}})
        self.sent.append((request.path, key, status))
        return web.Response(status=status, body=payload, content_type="application/json")

    @staticmethod
    def _worth_losing(request: web.Request, payload: bytes) -> bool:
        if request.path == POLL:
            return bool(orjson.loads(payload)["data"]["tasks"])
        return request.path == COMPLETE
