"""The demo definitions (``flowlog serve --demo``): a simulated cluster backup, the seed's
example, with a fail handler and a polling node, and a restore that waits for a person's
approval (a callback node) before its destructive step. Context keys steer the backup:

- ``clusterId``: the cluster to back up (any text);
- ``uploadSeconds``: how long the simulated upload runs (default 2);
- ``failAt``: the name of a node that fails (``backup``, ``upload`` or
  ``updateBackupRecord``), to see the fail handler run and the flow end in Error;
- ``slowSeconds``: how long ``backup`` takes (default 0.5), time enough to Stop or Cancel it.

The restore (``restore``) checks the backup named by ``backupPath``, then waits for approval:
complete its ``approval`` node with the token on the flow's detail (POST
/api/v1/workflow/callback), "success" wipes the cluster and loads the backup, "fail" (or a
day without an answer) abandons the restore without touching the cluster.

``flowlog serve --demo`` also creates, on first start, the nightly backup schedule
(``nightly-backup``: the backup at 02:00 Berlin time every night, see ``NIGHTLY``) and a few
demo flows (bizType ``demo``), so that the console has something to show: see ``seed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from flowlog.projections.reads import ListFilter
from flowlog.schedules.service import ScheduleService
from flowlog.wire.schedules import ScheduleSpec
from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import NodeDefinition, NodeKind, RetryPolicy, WorkflowDefinition
from flowlog.workflow.errors import NodeError, WorkflowError
from flowlog.workflow.executor import Failed, Finished, FlowContext, NodeHandle, PollResult, Running
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState, FlowStatus


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


async def check_backup(node: NodeHandle, ctx: FlowContext) -> None:
    _maybe_fail(node, ctx)
    node.record(f"backup {ctx.get('backupPath', '(latest)')} is complete")


async def request_approval(node: NodeHandle, ctx: FlowContext) -> None:
    # A real flow would send node.callback_token to a ticket or chat; the demo's operator
    # reads it on the flow's detail (and in the console).
    ctx["approvalRequested"] = True


async def wipe_cluster(node: NodeHandle, ctx: FlowContext) -> None:
    node.record(f"wiped {ctx.get('clusterId', 'cluster-1')} (simulated)")


async def load_backup(node: NodeHandle, ctx: FlowContext) -> None:
    node.record(f"loaded {ctx.get('backupPath', '(latest)')} (simulated)")


async def abandon(node: NodeHandle, ctx: FlowContext) -> None:
    node.record("restore abandoned; the cluster was not touched")


APPROVAL_DEADLINE = 24 * 3600.0

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
    ),
    WorkflowDefinition(
        "restore",
        {
            "start": NodeDefinition("checkBackup", check_backup, success="approval",
                                    fail="abandon"),
            "approval": NodeDefinition("approval", request_approval, kind=NodeKind.CALLBACK,
                                       deadline=APPROVAL_DEADLINE, success="wipe",
                                       fail="abandon"),
            "wipe": NodeDefinition("wipeCluster", wipe_cluster, success="load"),
            "load": NodeDefinition("loadBackup", load_backup),
            "abandon": NodeDefinition("abandon", abandon),
        },
    ),
]  # fmt: skip


# -- demo flows: something to look at in the console ------------------------------------------

DEMO_BIZ_TYPE = "demo"
DEMO_FLOWS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("demo-cluster-1", {"clusterId": "demo-1"}, "run"),
    ("demo-cluster-2", {"clusterId": "demo-2", "failAt": "upload"}, "run"),
    ("demo-cluster-3", {"clusterId": "demo-3", "failAt": "updateBackupRecord"}, "retry"),
    ("demo-cluster-4", {"clusterId": "demo-4", "slowSeconds": 2}, "stop"),
    ("demo-cluster-5", {"clusterId": "demo-5", "slowSeconds": 2}, "cancel"),
    ("demo-cluster-6", {"clusterId": "demo-6", "uploadSeconds": 540}, "run"),
    ("demo-cluster-7", {"clusterId": "demo-7"}, "create"),
)
"""(bizId, context, what happens): flows that end in every status, one retried after a
failure, one polling its upload for nine minutes (within the node's ten-minute deadline), one
never started."""
_ACTOR = Caller(actor="demo", reason="a demo flow (flowlog serve --demo)")


NIGHTLY = ScheduleSpec(
    flowName="backup",
    cron="0 2 * * *",
    timezone="Europe/Berlin",
    bizType=DEMO_BIZ_TYPE,
    bizIdTemplate="nightly-{{fireTimeLocal:%Y-%m-%d}}",
    context={"clusterId": "demo-nightly", "night": "{{fireTimeLocal:%A}}"},
    catchUp="last",
    description="the demo's nightly backup, at 02:00 in Berlin",
)
"""A backup every night: after downtime, the last missed night is backed up once."""


def nightly_id(tenant: str) -> str:
    return "nightly-backup" if not tenant else f"nightly-backup-{tenant}"


async def seed(
    service: WorkflowService,
    tenants: Sequence[str] = ("",),
    schedules: ScheduleService | None = None,
) -> int:
    """Creates the demo flows (and the nightly backup schedule) in each tenant that has none
    yet; returns how many flows. The reactor runs them; the retried one is retried once it
    has failed."""
    created = 0
    for tenant in tenants:
        existing = await service.list_workflows(
            ListFilter(biz_type=DEMO_BIZ_TYPE, tenant_id=tenant), page_size=1
        )
        if existing.total:
            continue
        if schedules is not None:
            with contextlib.suppress(WorkflowError):  # made already (another process)
                await schedules.create(nightly_id(tenant), NIGHTLY, tenant_id=tenant,
                                       caller=_ACTOR)  # fmt: skip
        for biz_id, context, fate in DEMO_FLOWS:
            flow_id = (await service.create(
                biz_id, DEMO_BIZ_TYPE, "backup", context=context, caller=_ACTOR,
                tenant_id=tenant, user_id="demo", start=fate != "create",
            )).flow_id  # fmt: skip
            created += 1
            if fate == "stop" and await _until(service, flow_id, _running):
                stop = Caller(actor="demo", reason="demo: a maintenance window")
                await service.stop(flow_id, stop.reason or "", stop)
            elif fate == "cancel" and await _until(service, flow_id, _running):
                cancel = Caller(actor="demo", reason="demo: the backup is no longer needed")
                await service.cancel(flow_id, cancel.reason or "", cancel)
            elif fate == "retry" and await _until(service, flow_id, _failed):
                retry = Caller(actor="demo", reason="demo: the record store is back")
                await service.retry(flow_id, {"failAt": ""}, caller=retry)
    return created


def _running(state: FlowState) -> bool:
    return state.running_node is not None


def _failed(state: FlowState) -> bool:
    return state.status is FlowStatus.ERROR


async def _until(
    service: WorkflowService, flow_id: str, ready: Callable[[FlowState], bool]
) -> bool:
    """Waits (up to 30 s) until the reactor has brought the flow to a ``ready`` state."""
    for _ in range(300):
        if ready(await service.get(flow_id)):
            return True
        await asyncio.sleep(0.1)
    return False
