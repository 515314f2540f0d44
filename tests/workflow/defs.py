"""Definitions shared by the workflow tests (importable by worker processes too)."""

from __future__ import annotations

from flowlog.workflow.definition import NodeDefinition, NodeKind, RetryPolicy, WorkflowDefinition
from flowlog.workflow.executor import Finished, FlowContext, NodeHandle, PollResult


async def noop(node: NodeHandle, ctx: FlowContext) -> None:
    return None


async def submit(node: NodeHandle, ctx: FlowContext) -> str:
    return f"op-{node.id}"


async def poll_done(node: NodeHandle, ctx: FlowContext, operation_id: str) -> PollResult:
    return Finished("done")


def backup_flow(name: str = "backup") -> WorkflowDefinition:
    """The seed's backup flow: backup -> updateBackupRecord -> end, any failure -> fail."""
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("backup", noop, success="backupDone", fail="fail"),
            "backupDone": NodeDefinition(
                "updateBackupRecord", noop, success="updateRecordDone", fail="fail"
            ),
            "updateRecordDone": NodeDefinition("end", noop, fail="fail"),
            "fail": NodeDefinition("backupFail", noop),
        },
    )


def pausing_flow(name: str = "pausing") -> WorkflowDefinition:
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition("prepare", noop, success="second", fail="pause"),
            "second": NodeDefinition(
                "work", noop, success="", fail="pause", retry=RetryPolicy(max_attempts=3)
            ),
        },
    )


def polling_flow(name: str = "polling") -> WorkflowDefinition:
    return WorkflowDefinition(
        name,
        {
            "start": NodeDefinition(
                "deploy",
                submit,
                kind=NodeKind.POLLING,
                poll=poll_done,
                poll_interval=0.05,
                poll_deadline=5,
                success="check",
            ),
            "check": NodeDefinition("check", noop),
        },
    )
