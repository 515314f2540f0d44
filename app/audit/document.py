"""A flow's state as an audit document: plain JSON, the same from ``flowlog replay --json``,
the REST API's ``/state`` and SQL's ``flow_state()`` (sql/migrations/0004_audit.sql)."""

from __future__ import annotations

from typing import Any

from flowlog.times import audit_time
from flowlog.workflow.state import FlowState, NodeExecution


def state_document(state: FlowState) -> dict[str, Any]:
    running = state.running_node
    return {
        "flowId": state.flow_id,
        "name": state.name,
        "definitionVersion": state.definition_version,
        "version": state.version,
        "updatedAt": audit_time(state.updated_at),
        "status": state.status.value,
        "currentNode": running.name if running else None,
        "nextNodeKey": state.cursor,
        "failedNodeKey": state.failed_key,
        "errorCode": state.error_code,
        "errorMessage": state.error_message,
        "reason": state.reason,
        "context": dict(state.context),
        "nodes": [node_document(node) for node in state.nodes],
    }


def node_document(node: NodeExecution) -> dict[str, Any]:
    return {
        "id": node.node_id,
        "key": node.key,
        "name": node.name,
        "kind": node.kind,
        "attempt": node.attempt,
        "status": node.status.value,
        "startTime": audit_time(node.started_at),
        "endTime": None if node.ended_at is None else audit_time(node.ended_at),
        "operationId": node.operation_id,
        "result": node.result,
        "errorCode": node.error_code,
        "errorMessage": node.error_message,
    }
