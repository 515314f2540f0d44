"""The two roles flowlog connects as: the owner of the schema, and the runtime role that
serves with only what serving needs (sql/migrations/0006_runtime_role.sql)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DatabaseUrls:
    """Where flowlog connects: as the runtime role that serves (``url``, DATABASE_URL), and as
    the owner role that migrates, grants, rebuilds projections and imports logs
    (``owner_url``, FLOWLOG_OWNER_URL; None when one role does both)."""

    url: str
    owner_url: str | None = None

    @property
    def owner(self) -> str:
        """The URL for the owner's work: the owner role's, or the one role's."""
        return self.owner_url or self.url
