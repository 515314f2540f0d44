"""The backup flow of tests.workflow.defs, unchanged (``flowlog check-definition`` finds no
divergence)."""

from tests.workflow.defs import backup_flow

DEFINITIONS = [backup_flow()]
