"""The README's example SQL runs on a database with flows, and answers what it says."""

from __future__ import annotations

from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.errors import NodeError
from flowlog.workflow.executor import FlowContext, NodeHandle
from tests import readme
from tests.engines import StartEngine
from tests.workflow.defs import backup_flow
from tests.workflow.helpers import wait_for_status

QUERIES = ("stuck", "failures", "durations")


async def test_the_readme_queries_answer_on_real_flows(start_engine: StartEngine) -> None:
    async def fails(node: NodeHandle, ctx: FlowContext) -> None:
        raise NodeError("disk full")

    broken = WorkflowDefinition("broken", {"start": NodeDefinition("copyData", fails)})
    engine = await start_engine(backup_flow(), broken)
    done = (await engine.service.create("c", "cluster", "backup", start=True)).flow_id
    failed = (await engine.service.create("c", "cluster", "broken", start=True)).flow_id
    await wait_for_status(engine.service, done, {"Finished"})  # type: ignore[arg-type]
    await wait_for_status(engine.service, failed, {"Error"})  # type: ignore[arg-type]
    assert [b.name for b in readme.blocks() if b.language == "sql"] == list(QUERIES)
    queries = {name: readme.block(name) for name in QUERIES}
    durations = await engine.pool.fetch(queries["durations"])
    assert [(r["name"], r["flows"]) for r in durations] == [("backup", 1)]
    assert durations[0]["average_duration"].total_seconds() >= 0
    # A node that has been running for two hours (as if its worker hung).
    await engine.pool.execute(
        "UPDATE workflow_nodes SET status = 'Processing', end_time = NULL, "
        "start_time = now() - interval '2 hours' WHERE flow_id = $1",
        done,
    )

    stuck = await engine.pool.fetch(queries["stuck"])
    assert {r["id"] for r in stuck} == {done}
    failures = await engine.pool.fetch(queries["failures"])
    assert [(r["name"], r["failures"], r["example"]) for r in failures] == [
        ("copyData", 1, "disk full")
    ]
