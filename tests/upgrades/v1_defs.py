"""The backup flow as it was: ``flowlog check-definition`` / ``worker`` modules."""

from tests.upgrades.defs import V1

DEFINITIONS = [V1]
