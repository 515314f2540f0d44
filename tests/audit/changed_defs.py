"""Definitions for ``flowlog check-definition`` tests: the backup flow of tests.workflow.defs,
changed as a deploy might change it."""

from __future__ import annotations

import dataclasses

from flowlog.workflow.definition import WorkflowDefinition
from tests.workflow.defs import backup_flow

_old = backup_flow()
_nodes = dict(_old.nodes)
# The clean-up handler is gone from the first node: a failure there now ends the flow at once.
_nodes["start"] = dataclasses.replace(_nodes["start"], fail="")

DEFINITIONS = [WorkflowDefinition(_old.name, _nodes)]
