"""check-definition's core: a history never diverges from the definition that wrote it, and a
change shows at the first event it would have decided otherwise."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from flowlog.audit.check import divergence_of
from flowlog.workflow.commands import Advance, RecordFailure, RecordSuccess, StartFlow
from flowlog.workflow.definition import RetryPolicy, WorkflowDefinition
from flowlog.workflow.errors import StaleOutcome, WorkflowError
from tests.workflow.defs import backup_flow
from tests.workflow.harness import Memory, created
from tests.workflow.test_properties import ACTIONS, DEFINITIONS, RETRYING, command_for


def _changed(definition: WorkflowDefinition, key: str, **changes: object) -> WorkflowDefinition:
    nodes = dict(definition.nodes)
    nodes[key] = dataclasses.replace(nodes[key], **changes)  # type: ignore[arg-type]
    return WorkflowDefinition(definition.name, nodes)


def _run(memory: Memory, *commands: object) -> None:
    for command in commands:
        memory.run(command)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    definition=st.sampled_from(DEFINITIONS),
    actions=st.lists(ACTIONS, min_size=1, max_size=60),
)
def test_a_history_replays_the_same_against_its_own_definition(
    definition: WorkflowDefinition, actions: list[object]
) -> None:
    memory = created(definition, a=0)
    for action in actions:
        for command in (command_for(memory, action), Advance()):
            if command is None:
                continue
            try:
                memory.run(command)
            except (WorkflowError, StaleOutcome):
                continue
    assert divergence_of(memory.history, definition) is None


def test_a_changed_transition_diverges_at_the_outcome_it_decides() -> None:
    memory = created(backup_flow())
    _run(memory, StartFlow(), Advance())
    node = memory.flow.running_node
    assert node is not None
    _run(memory, RecordSuccess(node.node_id))
    # Every node stays reachable (a definition must be valid): the old next one via failure.
    changed = _changed(backup_flow(), "start", success="updateRecordDone", fail="backupDone")
    divergence = divergence_of(memory.history, changed)
    assert divergence is not None
    assert divergence.version == 4  # created, started, node started, node succeeded
    assert "next='backupDone'" in divergence.recorded
    assert "next='updateRecordDone'" in divergence.now


def test_a_renamed_node_diverges_where_it_starts() -> None:
    memory = created(backup_flow())
    _run(memory, StartFlow(), Advance())
    divergence = divergence_of(memory.history, _changed(backup_flow(), "start", name="snapshot"))
    assert divergence is not None
    assert divergence.version == 3
    assert "name='backup'" in divergence.recorded
    assert "name='snapshot'" in divergence.now


def test_a_removed_node_is_named() -> None:
    memory = created(backup_flow())
    _run(memory, StartFlow(), Advance())
    node = memory.flow.running_node
    assert node is not None
    _run(memory, RecordSuccess(node.node_id))  # the next node, backupDone, starts
    old = backup_flow()
    nodes = {k: v for k, v in old.nodes.items() if k not in {"backupDone", "updateRecordDone"}}
    nodes["start"] = dataclasses.replace(nodes["start"], success="")
    divergence = divergence_of(memory.history, WorkflowDefinition(old.name, nodes))
    assert divergence is not None
    assert divergence.version == 4
    assert "next=None" in divergence.now


def test_a_changed_retry_policy_diverges_at_the_failure() -> None:
    memory = created(RETRYING)
    _run(memory, StartFlow(), Advance())
    node = memory.flow.running_node
    assert node is not None
    _run(memory, RecordFailure(node.node_id, 1, "boom"))  # retried: 3 attempts allowed
    fewer = _changed(RETRYING, "start", retry=RetryPolicy(1))
    divergence = divergence_of(memory.history, fewer)
    assert divergence is not None
    assert "will_retry=True" in divergence.recorded
    assert "will_retry=False" in divergence.now
    # Retry times come from the deciding clock: the same policy never diverges on them.
    assert divergence_of(memory.history, RETRYING) is None
