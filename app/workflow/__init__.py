"""The workflow domain: definitions, flows as event streams, the service and the reactor.

The public Python API (see the README and docs/workflows.md)::

    from app.workflow import (
        Engine, Registry, WorkflowDefinition, NodeDefinition, NodeKind, RetryPolicy, PAUSE,
        NodeHandle, FlowContext, Running, Finished, Failed, NodeError,
    )
"""

from app.workflow.definition import (
    PAUSE,
    START,
    NodeDefinition,
    NodeKind,
    Registry,
    RetryPolicy,
    WorkflowDefinition,
)
from app.workflow.engine import Engine, load_definitions
from app.workflow.errors import Code, DefinitionNotFound, FlowNotFound, NodeError, WorkflowError
from app.workflow.executor import (
    Executor,
    Failed,
    Finished,
    FlowContext,
    NodeHandle,
    PollFunction,
    PollResult,
    Running,
)
from app.workflow.reactor import Reactor, ReactorSettings
from app.workflow.repository import Caller
from app.workflow.service import WorkFlowService
from app.workflow.state import FlowState, FlowStatus, NodeExecution, NodeStatus

__all__ = [
    "PAUSE",
    "START",
    "Caller",
    "Code",
    "DefinitionNotFound",
    "Engine",
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
    "WorkFlowService",
    "WorkflowDefinition",
    "WorkflowError",
    "load_definitions",
]
