"""The named SQL of audit (sql/queries/audit.sql)."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class AuditQueries:
    history: str
    history_of: str
    state_at_version: str
    state_as_of: str
    export_source: str
    export_stream: str
    export_stream_count: str
    export_range: str
    export_range_count: str
    import_lock: str
    import_has_events: str
    import_broken_streams: str
    import_unfinished_flows: str
    import_work: str
    check_flows: str
    migration_versions: str
    migration_lock: str
    migration_flows: str


Q = load_queries(AuditQueries, "audit")
