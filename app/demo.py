"""The demo definitions (``flowlog serve --demo``): a simulated cluster backup, the seed's
example, with a fail handler and a polling node. Context keys steer it:

- ``clusterId``: the cluster to back up (any text);
- ``uploadSeconds``: how long the simulated upload runs (default 2);
- ``failAt``: the name of a node that fails (``backup``, ``upload`` or
  ``updateBackupRecord``), to see the fail handler run and the flow end in Error;
- ``slowSeconds``: how long ``backup`` takes (default 0.5), time enough to Stop or Cancel it.
"""

from __future__ import annotations

import asyncio
import time

from app.workflow.definition import NodeDefinition, NodeKind, RetryPolicy, WorkflowDefinition
from app.workflow.errors import NodeError
from app.workflow.executor import Failed, Finished, FlowContext, NodeHandle, PollResult, Running


def _maybe_fail(node: NodeHandle, ctx: FlowContext) -> None:
    if ctx.get("failAt") == node.name:
        raise NodeError(f"{node.name} failed (failAt in the context)", code=7001)


async def backup(node: NodeHandle, ctx: FlowContext) -> None:
    await asyncio.sleep(float(ctx.get("slowSeconds", 0.5)))
    _maybe_fail(node, ctx)
    cluster = ctx.get("clusterId", "cluster-1")
    ctx["backupPath"] = f"/backups/{cluster}/{node.flow_id}"
    node.record(f"backed up {cluster} to {ctx['backupPath']}")


async def start_upload(node: NodeHandle, ctx: FlowContext) -> str:
    # The operation id carries its start time: the simulated store needs no state of its own.
    return f"upload:{time.time():.3f}"


async def poll_upload(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
    if ctx.get("failAt") == "upload":
        return Failed("the object store refused the upload", code=7002)
    started = float(operation_id.split(":", 1)[1])
    if time.time() - started < float(ctx.get("uploadSeconds", 2)):
        return Running()
    return Finished(f"uploaded {ctx.get('backupPath', '')}")


async def update_record(node: NodeHandle, ctx: FlowContext) -> None:
    _maybe_fail(node, ctx)
    node.record("backup record updated")


async def clean_up(node: NodeHandle, ctx: FlowContext) -> None:
    node.record(f"removed partial backup {ctx.get('backupPath', '(none)')}")


DEFINITIONS = [
    WorkflowDefinition(
        "backup",
        {
            "start": NodeDefinition("backup", backup, success="backupDone", fail="fail",
                                    retry=RetryPolicy(max_attempts=2, initial_interval=0.5)),
            "backupDone": NodeDefinition("upload", start_upload, kind=NodeKind.POLLING,
                                         poll=poll_upload, poll_interval=0.5, poll_deadline=600,
                                         success="uploadDone", fail="fail"),
            "uploadDone": NodeDefinition("updateBackupRecord", update_record, fail="fail"),
            "fail": NodeDefinition("backupFail", clean_up),
        },
    )
]  # fmt: skip
