"""flowlog: an event-sourced workflow service on PostgreSQL.

The public surface (docs/python.md): what a user imports to write definitions and executors and
to run them in a process of their own::

    from flowlog import WorkflowDefinition, NodeDefinition, NodeKind, RetryPolicy, Finished

and the client of the REST API, ``from flowlog.client import FlowlogClient``. Every other module
is internal: it may change in any release.

The names are loaded when first asked for (PEP 562), so that importing any module of flowlog
(the event store, a command) loads that module's own imports, not the engine and all it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowlog.lazy import lazy_names

if TYPE_CHECKING:
    __version__: str
    """The distribution's version."""

    from flowlog.config import Settings
    from flowlog.database import provide_database
    from flowlog.engine import Engine, load_definitions
    from flowlog.workflow.definition import (
        PAUSE,
        START,
        NodeDefinition,
        NodeKind,
        Registry,
        RetryPolicy,
        WorkflowDefinition,
    )
    from flowlog.workflow.errors import (
        Code,
        DefinitionNotFound,
        FlowNotFound,
        NodeError,
        WorkflowError,
    )
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
    from flowlog.workflow.fanout import Children
    from flowlog.workflow.limits import Concurrency, RateLimit
    from flowlog.workflow.reactor_settings import ReactorSettings
    from flowlog.workflow.state import FlowState, FlowStatus, NodeExecution, NodeStatus

_HOME = {
    "flowlog.workflow.definition": (
        "PAUSE", "START", "NodeDefinition", "NodeKind", "Registry", "RetryPolicy",
        "WorkflowDefinition",
    ),
    "flowlog.workflow.executor": (
        "Executor", "Failed", "Finished", "FlowContext", "NodeHandle", "PollFunction",
        "PollResult", "Running",
    ),
    "flowlog.workflow.errors": (
        "Code", "DefinitionNotFound", "FlowNotFound", "NodeError", "WorkflowError",
    ),
    "flowlog.workflow.fanout": ("Children",),
    "flowlog.workflow.limits": ("Concurrency", "RateLimit"),
    "flowlog.workflow.state": ("FlowState", "FlowStatus", "NodeExecution", "NodeStatus"),
    "flowlog.workflow.reactor_settings": ("ReactorSettings",),
    "flowlog.engine": ("Engine", "load_definitions"),
    "flowlog.config": ("Settings",),
    "flowlog.database": ("provide_database",),
}  # fmt: skip
_find, _names = lazy_names("flowlog", _HOME, globals())

__all__ = [
    "PAUSE",
    "START",
    "Children",
    "Code",
    "Concurrency",
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
    "RateLimit",
    "ReactorSettings",
    "Registry",
    "RetryPolicy",
    "Running",
    "Settings",
    "WorkflowDefinition",
    "WorkflowError",
    "__version__",
    "load_definitions",
    "provide_database",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("flowlog")
    return _find(name)


def __dir__() -> list[str]:
    return sorted({*_names(), "__version__"})
