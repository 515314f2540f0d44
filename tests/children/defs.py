"""Definitions of flows with children, for the tests: a fleet backup (a map of backups, then
two branches side by side), a sub-flow, and children that wait for a callback."""

from __future__ import annotations

from flowlog.workflow.definition import NodeDefinition, WorkflowDefinition
from flowlog.workflow.errors import NodeError
from flowlog.workflow.executor import FlowContext, NodeHandle
from flowlog.workflow.fanout import Children


async def noop(node: NodeHandle, ctx: FlowContext) -> None:
    return None


async def back_up(node: NodeHandle, ctx: FlowContext) -> None:
    cluster = ctx["clusterId"]
    if cluster in ctx.get("failFor", []):
        raise NodeError(f"backup of {cluster} failed")
    ctx["backedUp"] = f"backup-of-{cluster}"


async def verify(node: NodeHandle, ctx: FlowContext) -> None:
    ctx["verified"] = len(ctx["backups"])


async def report(node: NodeHandle, ctx: FlowContext) -> None:
    ctx["reported"] = True


async def hold(node: NodeHandle, ctx: FlowContext) -> None:
    """A callback node's action: the child then waits until someone completes it."""


BACKUP = WorkflowDefinition("backup", {"start": NodeDefinition("backUp", back_up)})

FLEET = WorkflowDefinition(
    "backup-fleet",
    {
        "start": NodeDefinition("listClusters", noop, success="each"),
        "each": NodeDefinition(
            "backupEach", kind="map", success="checks",
            children=Children(flow="backup", items="clusters", item_key="clusterId",
                              max_concurrency=2, results_key="backups",
                              result_key="backedUp"),
        ),
        "checks": NodeDefinition(
            "verifyAndReport", kind="parallel", success="done",
            children=Children(branches={"verify": "verify1", "report": "report1"}),
        ),
        "verify1": NodeDefinition("verify", verify),
        "report1": NodeDefinition("report", report),
        "done": NodeDefinition("done", noop),
    },
)  # fmt: skip

WAITER = WorkflowDefinition(
    "waiter", {"start": NodeDefinition("hold", hold, kind="callback", success="")}
)

HOLDERS = WorkflowDefinition(
    "holders",
    {
        "start": NodeDefinition(
            "holdEach", kind="map", success="after",
            children=Children(flow="waiter", items="items", max_concurrency=3),
        ),
        "after": NodeDefinition("after", noop),
    },
)  # fmt: skip

ONE = WorkflowDefinition(
    "one-backup",
    {
        "start": NodeDefinition(
            "backUpOne", kind="subflow", success="done",
            children=Children(flow="backup", context={"clusterId": "c-main"},
                              result_key="backup"),
        ),
        "done": NodeDefinition("done", noop),
    },
)  # fmt: skip

ALL = (BACKUP, FLEET, WAITER, HOLDERS, ONE)


async def maybe_break(node: NodeHandle, ctx: FlowContext) -> None:
    if ctx.get("broken"):
        raise NodeError("the branch broke", code=7100)
    ctx[f"{node.key}Done"] = True


def branches(name: str, **settings: object) -> WorkflowDefinition:
    """A parallel node over a quick branch, a branch that breaks while ``broken`` is set, and
    a branch that waits for a callback (someone completes it, or it is canceled)."""
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition(
                "side", kind="parallel", success="after",
                children=Children(branches={"quick": "quick", "fragile": "fragile",
                                            "slow": "slow"}, **settings),  # type: ignore[arg-type]
            ),
            "quick": NodeDefinition("quick", maybe_break_never),
            "fragile": NodeDefinition("fragile", maybe_break),
            "slow": NodeDefinition("slow", hold, kind="callback"),
            "after": NodeDefinition("after", noop),
        },
    )  # fmt: skip


async def maybe_break_never(node: NodeHandle, ctx: FlowContext) -> None:
    ctx["quickDone"] = True


ALL_JOIN = branches("all-join")
ANY_JOIN = branches("any-join", join="any")
WAIT_JOIN = branches("wait-join", on_branch_failure="wait")
TWO_OF_THREE = branches("two-of-three", join=2)
PARALLELS = (ALL_JOIN, ANY_JOIN, WAIT_JOIN, TWO_OF_THREE)

# A map whose children are maps of waiters: a tree three flows deep.
NESTED = WorkflowDefinition(
    "nested",
    {
        "start": NodeDefinition(
            "eachGroup", kind="map",
            children=Children(flow="holders", items="groups", item_key="items"),
        ),
    },
)  # fmt: skip
