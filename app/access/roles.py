"""The roles a key or a person holds, in order: each may do what the ones below it may."""

from __future__ import annotations

import enum
from typing import Final


class Role(enum.StrEnum):
    VIEWER = "viewer"
    """Reads: lists, details, history, state, event streams, definitions, schedules, pages."""
    OPERATOR = "operator"
    """Also acts on flows: start, stop, cancel, retry, context, callbacks, bulk actions,
    pausing and resuming schedules, the task API of workers."""
    ADMIN = "admin"
    """Also changes what runs: definitions, schedules, and the keys of its tenant."""
    SUPERADMIN = "superadmin"
    """The installation's: every tenant, and keys of any tenant."""

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role | None) -> bool:
        """Whether this role may do what ``needed`` guards (None: anyone may)."""
        return needed is None or self.rank >= needed.rank


_RANKS: Final = {role: rank for rank, role in enumerate(Role)}

ANYONE: Final[None] = None
"""What a route needs when it is open to every caller, identified or not (health, metrics,
the API's own document)."""

ROLES: Final = tuple(role.value for role in Role)
