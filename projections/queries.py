"""The projections' statements, loaded from sql/queries/projections.sql by name."""

from __future__ import annotations

from dataclasses import dataclass

from flowlog.sql import load_queries


@dataclass(frozen=True, slots=True)
class ProjectionQueries:
    insert_workflows: str
    update_workflows: str
    insert_nodes: str
    update_nodes: str
    add_counts: str
    upsert_definition: str
    workflow: str
    nodes_of: str
    node_names: str
    definitions: str
    children_counts: str
    children_listed: str


Q = load_queries(ProjectionQueries, "projections")
