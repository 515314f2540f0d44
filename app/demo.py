"""The demo definitions (``flowlog serve --demo``): a simulated cluster backup, the seed's
example, with a fail handler and a polling node, and a restore that waits for a person's
approval (a callback node) before its destructive step. Context keys steer the backup:

- ``clusterId``: the cluster to back up (any text);
- ``uploadSeconds``: how long the simulated upload runs (default 2);
- ``failAt``: the name of a node that fails (``backup``, ``upload`` or
  ``updateBackupRecord``), to see the fail handler run and the flow end in Error; or, to fail
  one cluster of a fleet, an object naming that node by cluster (``{"fleet-4": "upload"}``);
- ``slowSeconds``: how long ``backup`` takes (default 0.5), time enough to Stop or Cancel it.

The restore (``restore``) checks the backup named by ``backupPath``, then waits for approval:
complete its ``approval`` node with the token on the flow's detail (POST
/api/v1/workflow/callback), "success" wipes the cluster and loads the backup, "fail" (or a
day without an answer) abandons the restore without touching the cluster.

The fleet backup (``fleet-backup``) backs up every cluster of its ``clusters`` list, each a
``backup`` flow of its own (a map node, three at a time; one failed cluster is tolerated and
its backup is missing from ``backups``), then verifies the backups and sends a report side by
side (a parallel node, each branch a child flow), then is done.

``flowlog serve --demo`` also creates, on first start, the nightly backup schedule
(``nightly-backup``: the backup at 02:00 Berlin time every night, see ``NIGHTLY``) and a few
demo flows (bizType ``demo``, a fleet backup among them), so that the console has something to
show: see ``seed``.
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
from flowlog.workflow.fanout import Children
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState, FlowStatus


def _fails(node: str, ctx: FlowContext) -> bool:
    """Whether ``failAt`` names this node: for every flow, or for this flow's cluster."""
    fail_at = ctx.get("failAt")
    if isinstance(fail_at, dict):
        return bool(fail_at.get(str(ctx.get("clusterId", ""))) == node)
    return bool(fail_at == node)


def _maybe_fail(node: NodeHandle, ctx: FlowContext) -> None:
    if _fails(node.name, ctx):
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
    if _fails("upload", ctx):
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


async def verify_backups(node: NodeHandle, ctx: FlowContext) -> None:
    await asyncio.sleep(1.0)  # long enough to be seen beside the report in the timeline
    clusters, backups = ctx.get("clusters", []), ctx.get("backups", [])
    missing = [c for c, b in zip(clusters, backups, strict=False) if b is None]
    ctx["verified"] = len(backups) - len(missing)
    node.record(f"{ctx['verified']} backups verified; missing: {', '.join(missing) or 'none'}")


async def send_report(node: NodeHandle, ctx: FlowContext) -> None:
    await asyncio.sleep(0.6)
    ctx["reported"] = True
    node.record(f"report sent for {len(ctx.get('backups', []))} clusters")


async def fleet_done(node: NodeHandle, ctx: FlowContext) -> None:
    node.record("fleet backed up")


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
    WorkflowDefinition(
        "fleet-backup",
        {
            "start": NodeDefinition(
                "backupEach", kind=NodeKind.MAP, success="checks",
                children=Children(flow="backup", items="clusters", item_key="clusterId",
                                  max_concurrency=3, tolerated_failures=1,
                                  results_key="backups", result_key="backupPath"),
            ),
            "checks": NodeDefinition(
                "verifyAndReport", kind=NodeKind.PARALLEL, success="done",
                children=Children(branches={"verify": "verify", "report": "report"}),
            ),
            "verify": NodeDefinition("verifyBackups", verify_backups),
            "report": NodeDefinition("sendReport", send_report),
            "done": NodeDefinition("done", fleet_done),
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
FLEET_CLUSTERS = [f"fleet-{i}" for i in range(1, 7)]
DEMO_FLEET: tuple[str, dict[str, Any]] = (
    "demo-fleet-1",
    {"clusters": FLEET_CLUSTERS, "uploadSeconds": 1, "failAt": {"fleet-4": "updateBackupRecord"}},
)
"""A fleet backup of six clusters, one of which fails (and is tolerated)."""
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
        fleet_id, fleet_context = DEMO_FLEET
        await service.create(
            fleet_id, DEMO_BIZ_TYPE, "fleet-backup", context=fleet_context, caller=_ACTOR,
            tenant_id=tenant, user_id="demo", start=True,
        )  # fmt: skip
        created += 1
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
