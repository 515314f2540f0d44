"""The backup flow after a change of shape, alone: deploying it strands v1's flows."""

from tests.upgrades.defs import V2

DEFINITIONS = [V2]
