"""Definitions: validation at registration, versions, the success path."""

from __future__ import annotations

import pytest

from flowlog.workflow.definition import (
    NodeDefinition,
    NodeKind,
    Registry,
    RetryPolicy,
    WorkflowDefinition,
)
from flowlog.workflow.errors import Code, DefinitionNotFound, InvalidDefinition
from flowlog.workflow.executor import FlowContext, NodeHandle, Running
from tests.workflow.defs import backup_flow, noop, poll_done, submit


def test_node_names_follow_the_success_path() -> None:
    assert backup_flow().node_names == ("backup", "updateBackupRecord", "end")


def test_the_version_is_a_hash_of_the_content() -> None:
    assert backup_flow().version == backup_flow().version
    assert backup_flow().version != backup_flow("other").version
    changed = WorkflowDefinition(
        "backup",
        {**backup_flow().nodes, "fail": NodeDefinition("backupFail", noop, timeout=5)},
    )
    assert changed.version != backup_flow().version


def sync_def(**nodes: NodeDefinition) -> WorkflowDefinition:
    return WorkflowDefinition("d", nodes)


def not_async(node: NodeHandle, ctx: FlowContext) -> None:
    return None


async def poll_running(node: NodeHandle, ctx: FlowContext, op: str) -> Running:
    return Running()


@pytest.mark.parametrize(
    ("nodes", "problem"),
    [
        ({}, "no nodes"),
        ({"begin": NodeDefinition("a", noop)}, "no entry node"),
        ({"start": NodeDefinition("a", noop, success="nowhere")}, "success key 'nowhere'"),
        ({"start": NodeDefinition("a", noop, fail="gone")}, "fail key 'gone'"),
        (
            {"start": NodeDefinition("a", noop), "lonely": NodeDefinition("b", noop)},
            "'lonely' cannot be reached",
        ),
        (
            {"start": NodeDefinition("a", noop, success="b"), "b": NodeDefinition("a", noop)},
            "same name 'a'",
        ),
        (
            {
                "start": NodeDefinition("a", noop, success="b"),
                "b": NodeDefinition("b", noop, success="start"),
            },
            "loop: start -> b -> start",
        ),
        ({"start": NodeDefinition("a", not_async)}, "async function"),  # type: ignore[arg-type]
        ({"start": NodeDefinition("a", submit, kind=NodeKind.POLLING)}, "needs a poll function"),
        ({"start": NodeDefinition("a", noop, poll=poll_running)}, "takes no poll function"),
        (
            {
                "start": NodeDefinition(
                    "a", submit, kind=NodeKind.POLLING, poll=poll_done, poll_interval=0
                )
            },
            "poll_interval must be positive",
        ),
        ({"start": NodeDefinition("a", noop, timeout=0)}, "timeout must be positive"),
        ({"start": NodeDefinition("a", noop, retry=RetryPolicy(max_attempts=0))}, "max_attempts"),
        ({"start": NodeDefinition("a", noop, retry=RetryPolicy(backoff=0.5))}, "backoff"),
        ({"start": NodeDefinition("", noop)}, "needs a name"),
        (
            {
                "start": NodeDefinition("a", noop, success="pause"),
                "pause": NodeDefinition("p", noop),
            },
            "reserved",
        ),
    ],
)
def test_invalid_definitions_are_refused_with_every_problem_named(
    nodes: dict[str, NodeDefinition], problem: str
) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        sync_def(**nodes)
    assert problem in str(caught.value)
    assert caught.value.code == Code.INVALID_DEFINITION


def test_a_string_kind_is_accepted_and_a_wrong_one_refused() -> None:
    assert NodeDefinition("a", noop, kind="sync").kind is NodeKind.SYNC  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinition, match="one of 'sync', 'polling', 'timer', 'callback'"):
        NodeDefinition("a", noop, kind="async")  # type: ignore[arg-type]


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        sync_def(start=NodeDefinition("a", noop, success="x", fail="y", timeout=-1))
    assert len(caught.value.problems) == 3


def test_retry_delays_grow_by_backoff_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, initial_interval=0.5, backoff=2, max_interval=3)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3]


def test_the_registry_finds_definitions_by_name_and_version() -> None:
    first = backup_flow()
    second = WorkflowDefinition(
        "backup", {**first.nodes, "fail": NodeDefinition("backupFail", noop, timeout=9)}
    )
    registry = Registry([first, second])

    assert registry.get("backup") is second
    assert registry.get_version("backup", first.version) is first
    assert registry.versions() == sorted([first.version, second.version])
    with pytest.raises(DefinitionNotFound) as caught:
        registry.get("nope")
    assert caught.value.code == Code.DEFINE_NOT_FOUND
