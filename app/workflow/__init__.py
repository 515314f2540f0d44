"""The workflow domain: definitions, flows as event streams, the service and the reactor.

The public Python API (see the README and docs/workflows.md)::

    from flowlog.workflow import (
        Registry, WorkflowDefinition, NodeDefinition, NodeKind, RetryPolicy, PAUSE,
        NodeHandle, FlowContext, Running, Finished, Failed, NodeError,
    )
"""

from flowlog.workflow.caller import Caller
from flowlog.workflow.definition import (
    PAUSE,
    START,
    NodeDefinition,
    NodeKind,
    Registry,
    RetryPolicy,
    WorkflowDefinition,
)
from flowlog.workflow.errors import Code, DefinitionNotFound, FlowNotFound, NodeError, WorkflowError
from flowlog.workflow.executor import (
    Executor,
    Failed,
    Finished,
    FlowContext,
    NodeHandle,
    PollFunction,
    PollResult,
    Running,
)
from flowlog.workflow.reactor import Reactor, ReactorSettings
from flowlog.workflow.service import WorkflowService
from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution, NodeStatus

__all__ = [
    "PAUSE",
    "START",
    "Caller",
    "Code",
    "DefinitionNotFound",
    "Executor",
    "Failed",
    "Finished",
    "FlowContext",
    "FlowNotFound",
    "FlowState",
    "FlowStatus",
    "NodeDefinition",
    "NodeError",
    "NodeExecution",
    "NodeHandle",
    "NodeKind",
    "NodeStatus",
    "PollFunction",
    "PollResult",
    "Reactor",
    "ReactorSettings",
    "Registry",
    "RetryPolicy",
    "Running",
    "WorkflowDefinition",
    "WorkflowError",
    "WorkflowService",
]
