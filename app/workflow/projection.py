"""A flow's state as the rows of the projection tables (projections/rows.py).

The same mapping serves the inline projection (after each append), rebuild and verify, so the
tables are exactly what folding the log gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flowlog.eventstore import RecordedEvent
from flowlog.projections.bulk import Projector
from flowlog.projections.rows import DefinitionRow, NodeRow, WorkflowRow
from flowlog.workflow.event_waits import WaitRow
from flowlog.workflow.events import FlowEvent, NodeStarted
from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution
from flowlog.workflow.streams import (
    DEFINITION_REGISTERED,
    DEFINITION_STREAM,
    FLOW_STREAM,
    definition_owner,
    fold_recorded,
)


def workflow_row(state: FlowState) -> WorkflowRow:
    return WorkflowRow(
        id=state.flow_id,
        name=state.name,
        biz_id=state.biz_id,
        biz_type=state.biz_type,
        status=state.status.value,
        tenant_id=state.tenant_id,
        definition_version=state.definition_version,
        context=dict(state.context),
        error_code=state.error_code,
        error_message=state.error_message,
        created_at=state.created_at,
        updated_at=state.updated_at,
        stream_version=state.version,
        **_parent_columns(state),
    )


def _parent_columns(state: FlowState) -> dict[str, Any]:
    link = state.parent
    if link is None:
        return {}
    return {"parent_id": link.flow_id, "parent_node_id": link.node_id,
            "child_index": link.index, "branch": link.branch}  # fmt: skip


def node_row(state: FlowState, node: NodeExecution) -> NodeRow:
    return NodeRow(
        id=node.node_id,
        flow_id=state.flow_id,
        sequence=node.sequence,
        node_key=node.key,
        name=node.name,
        kind=node.kind,
        status=node.status.value,
        attempt=node.attempt,
        operation_id=node.operation_id,
        parameters=node.parameters,
        result=node.result,
        error_code=node.error_code,
        error_message=node.error_message,
        start_time=node.started_at,
        end_time=node.ended_at,
        stream_version=node.version,
    )


def node_rows(state: FlowState, node_ids: Iterable[str] | None = None) -> list[NodeRow]:
    """Rows of the flow's node executions (only those in ``node_ids`` when given)."""
    wanted = None if node_ids is None else set(node_ids)
    return [
        node_row(state, node) for node in state.nodes if wanted is None or node.node_id in wanted
    ]


def wait_row(state: FlowState) -> WaitRow | None:
    """The flow's row in ``event_waits``: its running node waits for an event, and the flow can
    still take the node's completion (a stopped flow can, as by token; a canceling one not)."""
    running = state.running_node
    if (
        running is None
        or not running.waiting
        or running.event is None
        or running.waiting_since is None
        or state.terminal
        or state.status is FlowStatus.CANCELING
    ):
        return None
    return WaitRow(running.node_id, state.flow_id, state.tenant_id, str(running.event["type"]),
                   dict(running.event["match"]), running.waiting_since)  # fmt: skip


def touched_nodes(events: Sequence[FlowEvent]) -> tuple[set[str], set[str]]:
    """The node executions ``events`` start, and those they change (and did not start)."""
    started = {e.node_id for e in events if isinstance(e, NodeStarted)}
    changed: set[str] = set()
    for event in events:
        node_id = getattr(event, "node_id", None)
        if node_id is not None and node_id not in started:
            changed.add(node_id)
    return started, changed


def project_flow(events: Sequence[RecordedEvent]) -> tuple[WorkflowRow, list[NodeRow]] | None:
    """The rows of one flow from its stored events (rebuild and verify)."""
    state = fold_recorded(events)
    return None if state is None else (workflow_row(state), node_rows(state))


def project_definitions(events: Sequence[RecordedEvent]) -> list[DefinitionRow]:
    """The rows of one definition's stream: a row per version, each with the name's owner
    (the tenant of its first version)."""
    registered = [e for e in events if e.type == DEFINITION_REGISTERED]
    owner = definition_owner(registered[0].data) if registered else None
    return [
        DefinitionRow(
            name=e.data["name"],
            version=e.data["version"],
            node_names=list(e.data["nodeNames"]),
            definition=e.data["definition"],
            registered_at=e.recorded_at,
            tenant_id=owner,
        )
        for e in registered
    ]


PROJECTOR = Projector(FLOW_STREAM, project_flow, DEFINITION_STREAM, project_definitions)
