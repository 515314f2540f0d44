"""The Python worker (``FlowlogClient.worker``) against the whole service: a node offered on a
queue runs in the worker with the executor signature of the reactor's, and comes to the same
outcome (result, context, NodeError's code, timeouts, a polling node's operation); a flow that
no longer wants the task interrupts it; a stop lets running tasks finish; another tenant's
worker receives nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from flowlog.client import FlowlogClient
from flowlog.client.worker import Worker
from flowlog.wire.flows import WorkFlowDetail
from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.errors import Code, NodeError
from flowlog.workflow.executor import FlowContext, NodeHandle
from tests.api.conftest import TOKENS, MakeService, Service
from tests.tasks import workerdefs
from tests.tasks.test_task_api import remote_spec
from tests.tasks.workerdefs import GPU_POLLING, GPU_RENDER, QUEUE, on_gpu
from tests.workflow.defs import noop

LEASE = 2.0
"""The tasks' lease in these tests (30 s by default): heartbeats every 2/3 s, and a lease the
worker let go of lapses in 2 s."""


@pytest.fixture
async def service(make_service: MakeService) -> Service:
    made = await make_service()
    made.engine.tasks.lease_seconds = LEASE
    return made


def base_url(service: Service) -> str:
    return str(service.client.make_url("")).rstrip("/")


@asynccontextmanager
async def flowlog(service: Service, token: str | None = None) -> AsyncIterator[FlowlogClient]:
    async with FlowlogClient(base_url(service), token=token) as client:
        yield client


async def started(
    client: FlowlogClient, flow_name: str, context: dict[str, Any] | None = None
) -> str:
    created = await client.create(flow_name, "frame-7", "film", start=True,
                                  context=context or {"frame": 7})  # fmt: skip
    return created.workFlowId


def render_node(detail: WorkFlowDetail) -> Any:
    """The last run of the node on the queue."""
    return [n for n in detail.nodes if n.name == "render"][-1]


async def path(client: FlowlogClient, flow_id: str) -> list[str]:
    """The nodes the flow ran, in order (the detail stops at a failure that was not retried)."""
    return [n.name for n in (await client.state(flow_id)).nodes]


async def test_a_python_node_on_a_queue_finishes_through_the_worker(service: Service) -> None:
    service.registry.register(GPU_RENDER)
    async with flowlog(service) as client:
        flow_id = await started(client, "gpu-render", {"frame": 7, "scratch": "x"})
        async with client.worker(QUEUE, definitions=[GPU_RENDER], worker_id="gpu-1") as worker:
            done = await client.wait(flow_id, {"Finished"}, within=20)
        assert [n.name for n in done.nodes] == ["prepare", "render", "finish"]
        assert render_node(done).result == "frame 7 on attempt 1\n"
        state = await client.state(flow_id)
        assert state.context["rendered"] == 14
        assert "scratch" not in state.context
        history = await client.history(flow_id)
        succeeded = next(e for e in history if e.type == "NodeSucceeded"
                         and e.data["node_id"] == render_node(done).id)  # fmt: skip
        assert "worker:gpu-1" in succeeded.actor
        assert worker.counts == {"success": 1}


def raising(exc: BaseException) -> Callable[[NodeHandle, FlowContext], Any]:
    async def executor(node: NodeHandle, ctx: FlowContext) -> None:
        ctx["tried"] = True  # recorded with the failure, as the reactor records it
        raise exc

    return executor


async def sleepy(node: NodeHandle, ctx: FlowContext) -> None:
    await asyncio.sleep(30)


@pytest.mark.parametrize(
    ("name", "executor", "settings", "code", "message"),
    [
        ("gpu-node-error", raising(NodeError("no GPU left", code=7002)), {}, 7002,
         "no GPU left"),
        ("gpu-value-error", raising(ValueError("bad frame")), {}, Code.NODE_FAILED,
         "ValueError: bad frame"),
        ("gpu-timeout", sleepy, {"timeout": 0.3}, Code.NODE_TIMEOUT,
         "node render timed out after 0.3 s"),
    ],
)  # fmt: skip
async def test_a_failed_executor_takes_the_fail_path_with_its_code(
    service: Service,
    name: str,
    executor: Any,
    settings: dict[str, Any],
    code: int,
    message: str,
) -> None:
    definition = on_gpu(name, executor, **settings)
    service.registry.register(definition)
    async with flowlog(service) as client:
        flow_id = await started(client, name)
        async with client.worker(QUEUE, definitions=[definition]) as worker:
            done = await client.wait(flow_id, {"Error"}, within=20)
        # The fail path ran (cleanup), then the flow ended in Error with the failure's code.
        assert await path(client, flow_id) == ["prepare", "render", "cleanup"]
        assert (done.info.errorCode, done.info.errorMessage) == (code, message)
        failed = render_node(done)
        assert (failed.status, failed.errorCode, failed.errorMessage) == ("Error", code, message)
        assert failed.result == message + "\n"
        assert worker.counts == {"fail": 1}
        if executor is not sleepy:
            assert (await client.state(flow_id)).context["tried"] is True


async def test_a_polling_node_submits_then_answers_its_polls(service: Service) -> None:
    service.registry.register(GPU_POLLING)
    workerdefs.POLLS.clear()
    async with flowlog(service) as client:
        flow_id = await started(client, "gpu-polling", {"frame": 9})
        async with client.worker(QUEUE, definitions=[GPU_POLLING]) as worker:
            done = await client.wait(flow_id, {"Finished"}, within=20)
        assert [n.name for n in done.nodes] == ["prepare", "render", "finish"]
        assert render_node(done).operationId == "op-9"
        assert render_node(done).result == "op-9 rendered\n"
        assert workerdefs.POLLS == {"op-9": 2}
        # The run submitted (running), the first poll found it running, the second finished.
        assert worker.counts == {"running": 2, "success": 1}
        assert (await client.state(flow_id)).context["submitted"] is True
        types = [e.type for e in await client.history(flow_id)]
        assert types.count("NodeOperationSubmitted") == 1


class Held:
    """An executor that waits until released, and says whether it was cancelled."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.released = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.runs = 0

    async def __call__(self, node: NodeHandle, ctx: FlowContext) -> None:
        self.runs += 1
        self.entered.set()
        try:
            await self.released.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        node.record(f"released on attempt {node.attempt}")


async def node_outcomes(client: FlowlogClient, flow_id: str) -> list[str]:
    ended = {"NodeSucceeded", "NodeFailed", "NodeOperationSubmitted"}
    return [e.type for e in await client.history(flow_id) if e.type in ended]


@pytest.mark.parametrize("command", ["stop", "cancel"])
async def test_a_flow_that_no_longer_wants_the_task_interrupts_its_executor(
    service: Service, command: str
) -> None:
    held = Held()
    definition = on_gpu(f"gpu-held-{command}", held)
    service.registry.register(definition)
    async with flowlog(service) as client:
        flow_id = await started(client, definition.name)
        async with client.worker(QUEUE, definitions=[definition]) as worker:
            await asyncio.wait_for(held.entered.wait(), 20)
            before = await node_outcomes(client, flow_id)
            if command == "stop":
                await client.stop(flow_id, reason="maintenance")
            else:
                await client.cancel(flow_id, reason="not needed")
            # The next heartbeat (a third of the 2 s lease) says it is not wanted.
            await asyncio.wait_for(held.cancelled.wait(), 10)
            await asyncio.sleep(0.5)
            assert worker.counts == {"interrupted": 1}
            assert await node_outcomes(client, flow_id) == before  # nothing was completed
            if command == "cancel":
                await client.wait(flow_id, {"Canceled"}, within=20)
                return
            assert (await client.detail(flow_id)).info.status == "Stopped"
            # Started again, the node runs again (in this worker), and the flow goes on.
            held.entered.clear()
            held.released.set()
            await client.start(flow_id, reason="maintenance over")
            done = await client.wait(flow_id, {"Finished"}, within=30)
        assert held.runs == 2
        # The task the worker let go of lapsed: a lost worker's (40110), run again.
        first, again = [n for n in done.nodes if n.name == "render"]
        assert (first.errorCode, again.attempt) == (Code.NODE_INTERRUPTED, 2)
        assert again.result == "released on attempt 2\n"
        assert worker.counts["success"] == 1


async def test_a_stop_lets_the_running_tasks_finish_and_interrupts_them_after_grace(
    service: Service,
) -> None:
    held = Held()
    definition = on_gpu("gpu-graceful", held)
    service.registry.register(definition)
    async with flowlog(service) as client:
        first = await started(client, definition.name)
        worker = client.worker(QUEUE, definitions=[definition], grace=20)
        running = asyncio.create_task(worker.run())
        await asyncio.wait_for(held.entered.wait(), 20)
        worker.stop()
        await asyncio.sleep(0.5)
        assert not running.done()  # waits for the executor
        held.released.set()
        await asyncio.wait_for(running, 10)
        assert worker.counts == {"success": 1}
        await client.wait(first, {"Finished"}, within=20)

        # With no grace left, a running executor is interrupted and its task not completed.
        stuck = Held()
        definition = on_gpu("gpu-stuck", stuck)
        service.registry.register(definition)
        second = await started(client, definition.name)
        worker = client.worker(QUEUE, definitions=[definition], grace=0.2)
        running = asyncio.create_task(worker.run())
        await asyncio.wait_for(stuck.entered.wait(), 20)
        worker.stop()
        await asyncio.wait_for(running, 10)
        assert stuck.cancelled.is_set()
        assert worker.counts == {"interrupted": 1}
        assert await node_outcomes(client, second) == ["NodeSucceeded"]  # prepare's only


async def test_a_worker_runs_up_to_its_concurrency_at_once(service: Service) -> None:
    inside = 0
    most = 0
    release = asyncio.Event()

    async def counted(node: NodeHandle, ctx: FlowContext) -> None:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await release.wait()
        inside -= 1

    definition = on_gpu("gpu-concurrent", counted)
    service.registry.register(definition)
    async with flowlog(service) as client:
        flows = [await started(client, definition.name) for _ in range(3)]
        async with client.worker(QUEUE, definitions=[definition], concurrency=2) as worker:
            await _until(lambda: inside == 2)
            await asyncio.sleep(0.5)  # a third would have been leased by now
            assert inside == 2
            release.set()
            for flow_id in flows:
                await client.wait(flow_id, {"Finished"}, within=20)
        assert most == 2
        assert worker.counts == {"success": 3}


async def test_a_task_without_an_executor_here_fails_naming_what_is_missing(
    service: Service,
) -> None:
    service.registry.register(GPU_RENDER)
    other = on_gpu("gpu-other", workerdefs.broken)
    async with flowlog(service) as client:
        flow_id = await started(client, "gpu-render")
        async with client.worker(QUEUE, definitions=[other], worker_id="w-9") as worker:
            done = await client.wait(flow_id, {"Error"}, within=20)
        failed = render_node(done)
        assert failed.errorCode == Code.NODE_FAILED
        assert failed.errorMessage == (
            "worker w-9 has no executor for node 'render' of 'gpu-render' (give it the node's "
            "definition, or the executor in executors=)"
        )
        assert await path(client, flow_id) == ["prepare", "render", "cleanup"]
        assert worker.counts == {"no-executor": 1}


async def test_an_outcome_the_task_api_refuses_fails_the_node_saying_why(
    service: Service,
) -> None:
    async def poses(node: NodeHandle, ctx: FlowContext) -> None:
        ctx["tenantId"] = "someone-else"  # flowlog's own key: a request may not set it

    definition = on_gpu("gpu-poser", poses)
    service.registry.register(definition)
    async with flowlog(service) as client:
        flow_id = await started(client, definition.name)
        async with client.worker(QUEUE, definitions=[definition]):
            done = await client.wait(flow_id, {"Error"}, within=20)
        failed = render_node(done)
        assert failed.errorCode == Code.OUTPUT_UNSTORABLE
        assert failed.errorMessage is not None
        assert "context.tenantId" in failed.errorMessage
        assert (await client.state(flow_id)).context.get("tenantId") != "someone-else"


async def test_another_tenants_worker_receives_nothing(make_service: MakeService) -> None:
    service = await make_service(tokens=TOKENS)
    service.engine.tasks.lease_seconds = LEASE
    ran: list[str] = []

    async def render(node: NodeHandle, ctx: FlowContext) -> None:
        ran.append(node.flow_id)

    async with flowlog(service, "token-a") as alice, flowlog(service, "token-b") as bob:
        await alice.register_definition(remote_spec("tenant-render"))
        created = await alice.create("tenant-render", "frame-1", "film", start=True)
        flow_id = created.workFlowId
        await _until_async(lambda: _depth(alice, "remote", 1))

        async with bob.worker("remote", executors={"render": render}, wait=0.5) as worker:
            await asyncio.sleep(1.5)  # three polls
        assert ran == []
        assert worker.counts == {}
        assert [q.queue for q in await bob.queues() if q.depth or q.held] == []
        detail = await alice.detail(flow_id)
        assert detail.info.status == "Processing"
        assert detail.task is not None
        assert detail.task.workerId is None

        async with alice.worker("remote", executors={"render": render}) as worker:
            done = await alice.wait(flow_id, {"Finished"}, within=20)
        assert ran == [flow_id]
        assert worker.counts == {"success": 1}
        assert [n.name for n in done.nodes] == ["prepare", "render", "finish"]


async def test_a_worker_with_nothing_to_run_on_its_queue_is_refused(service: Service) -> None:
    async with flowlog(service) as client:
        elsewhere = WorkflowDefinition("elsewhere", {"start": NodeDefinition("one", noop)})
        with pytest.raises(ValueError, match="nothing to run on queue 'gpu'"):
            client.worker(QUEUE, definitions=[elsewhere])
        assert isinstance(client.worker(QUEUE, definitions=[GPU_RENDER]), Worker)


async def _depth(client: FlowlogClient, queue: str, depth: int) -> bool:
    return any(q.queue == queue and q.depth == depth for q in await client.queues())


async def _until(probe: Callable[[], bool], within: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not probe():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _until_async(probe: Callable[[], Any], within: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await probe():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)
