"""The new backup flow with the old version kept beside it: nothing stranded."""

from tests.upgrades.defs import V1, V2

DEFINITIONS = [V1, V2]
