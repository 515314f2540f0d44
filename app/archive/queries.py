"""The archive's statements, loaded from sql/queries/archival.sql by name."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class ArchivalQueries:
    candidates: str
    candidate_summary: str
    read_streams: str
    unfinished: str
    archive_of: str
    archive_row: str
    remove: str
    try_lock: str
    unlock: str
    hot_log_size: str
    project_planned: str
    project_written: str
    project_written_flows: str
    project_removed: str
    project_kept: str
    project_restored: str
    project_touched: str
    stream_heads: str
    retention: str
    store_retention: str


Q = load_queries(ArchivalQueries, "archival")
