"""The named SQL of audit (sql/queries/audit.sql)."""

from __future__ import annotations

from dataclasses import dataclass

from sql import load_queries


@dataclass(frozen=True, slots=True)
class AuditQueries:
    history: str
    state_at_version: str
    state_as_of: str


Q = load_queries(AuditQueries, "audit")
